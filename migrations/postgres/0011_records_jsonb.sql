-- Record data becomes `jsonb`. As TEXT, every field expression in a filter, sort or
-- aggregate (`data::jsonb #>> '{amount}'`) parsed the whole document again: a roll-up
-- reading six fields of an opportunity parsed it fourteen times. `jsonb` is parsed
-- once, on write. Reads return it as text (`CAST(data AS TEXT)`), so the host still
-- sees JSON text; only whitespace and the order of keys inside `fields` change, which
-- JSON objects do not promise anyway. Field values never contain U+0000 (the host
-- rejects control characters), which `jsonb` cannot hold.
ALTER TABLE records ALTER COLUMN data TYPE jsonb USING data::jsonb;
