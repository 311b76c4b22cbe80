//! The demo tenant's data set: 240 accounts across ten countries, 1,200 contacts,
//! 2,400 opportunities across every stage with amounts, owners and close dates over
//! 18 months (12 back, 6 ahead), and 600 activities — generated deterministically
//! (same data on every machine) through the records service, so every record is
//! validated and audited like any other.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use time::{Date, Duration, OffsetDateTime};

use plinth_core::manifest::Role;
use plinth_core::records::{self, NewRecord, Who};
use plinth_core::store::Db;
use plinth_core::store::audit::Actor;

/// Accounts in the demo data set.
pub const ACCOUNTS: usize = 240;
/// Contacts per account.
pub const CONTACTS_PER_ACCOUNT: usize = 5;
/// Opportunities per account.
pub const OPPORTUNITIES_PER_ACCOUNT: usize = 10;
/// Activities per account.
pub const ACTIVITIES_PER_ACCOUNT: usize = 5;

const PREFIXES: &[&str] = &[
    "Nordwind",
    "Alpen",
    "Blue Harbor",
    "Cedar",
    "Danube",
    "Elbe",
    "Fjord",
    "Granite",
    "Helix",
    "Iris",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Meridian",
    "Nimbus",
    "Orchard",
    "Pioneer",
    "Quarry",
    "Riverbend",
    "Summit",
    "Tidewater",
    "Union",
    "Vantage",
    "Willow",
];
const SUFFIXES: &[&str] = &[
    "Logistics",
    "Analytics",
    "Foods",
    "Robotics",
    "Energy",
    "Health",
    "Retail",
    "Systems",
    "Capital",
    "Motors",
];
const COUNTRIES: &[(&str, &str, &str, &str)] = &[
    ("DE", "Berlin", "EUR", "GmbH"),
    ("AT", "Vienna", "EUR", "GmbH"),
    ("CH", "Zurich", "CHF", "AG"),
    ("FR", "Lyon", "EUR", "SAS"),
    ("GB", "Manchester", "GBP", "Ltd"),
    ("IE", "Dublin", "EUR", "Ltd"),
    ("US", "Boston", "USD", "Inc."),
    ("US", "Denver", "USD", "Inc."),
    ("CA", "Toronto", "CAD", "Inc."),
    ("NL", "Utrecht", "EUR", "B.V."),
];
const INDUSTRIES: &[&str] = &[
    "technology",
    "manufacturing",
    "finance",
    "healthcare",
    "retail",
    "energy",
    "public_sector",
    "education",
    "other",
];
const FIRST: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kai", "Lena", "Mateo", "Nora",
    "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tara",
];
const LAST: &[&str] = &[
    "Becker",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Schmidt",
    "Novak",
    "Rossi",
    "Keller",
    "Haddad",
    "Brennan",
    "Tanaka",
    "Silva",
    "Weber",
    "Kowalski",
    "Larsen",
];
const TITLES: &[&str] = &[
    "CFO",
    "Head of Operations",
    "IT Director",
    "Procurement Lead",
    "VP Sales",
    "CEO",
    "Office Manager",
];

/// `(stage, probability, forecast category)` with relative weights.
const STAGES: &[(&str, u32, &str, u32)] = &[
    ("prospecting", 10, "pipeline", 18),
    ("qualification", 20, "pipeline", 16),
    ("proposal", 50, "best_case", 14),
    ("negotiation", 75, "commit", 10),
    ("closed_won", 100, "closed", 24),
    ("closed_lost", 0, "omitted", 18),
];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn stage(rng: &mut StdRng) -> (&'static str, u32, &'static str) {
    let total: u32 = STAGES.iter().map(|s| s.3).sum();
    let mut roll = rng.gen_range(0..total);
    for (name, probability, category, weight) in STAGES {
        if roll < *weight {
            return (name, *probability, category);
        }
        roll -= weight;
    }
    ("prospecting", 10, "pipeline")
}

fn date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A record the data set created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    /// Its object.
    pub object: &'static str,
    /// Its id.
    pub id: String,
    /// The country of its account (ISO 3166-1 alpha-2).
    pub country: &'static str,
}

/// Create the data set in `tenant`, owned by `owners` (user ids, round robin by
/// account), acting as `owner` (a user with the owner role). Returns every record
/// with its account's country, for the caller to share them with sales regions.
pub async fn seed(db: &Db, tenant: &str, owner: &str, owners: &[String]) -> anyhow::Result<Vec<Seeded>> {
    let mut rng = StdRng::seed_from_u64(0x5EED_2026);
    let who = Who {
        tenant: tenant.to_string(),
        user_id: owner.to_string(),
        role: Role::Owner,
        actor: Actor::system(),
        override_lock: false,
    };
    let today = OffsetDateTime::now_utc().date();

    let mut accounts = Vec::with_capacity(ACCOUNTS);
    let mut account_meta = Vec::with_capacity(ACCOUNTS);
    for i in 0..ACCOUNTS {
        let (country, city, currency, form) = *pick(&mut rng, COUNTRIES);
        let name = format!(
            "{} {} {form}",
            PREFIXES[i % PREFIXES.len()],
            SUFFIXES[(i / PREFIXES.len()) % SUFFIXES.len()]
        );
        let domain = name
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join("")
            .to_lowercase();
        let employees: u32 = rng.gen_range(8..25_000);
        let fields = json!({
            "name": name,
            "type": pick(&mut rng, &["prospect", "customer", "customer", "partner"]),
            "industry": pick(&mut rng, INDUSTRIES),
            "annual_revenue": f64::from(employees) * f64::from(rng.gen_range(80_000u32..260_000)),
            "employees": employees,
            "country": country,
            "city": city,
            "website": format!("https://www.{domain}.example"),
            "phone": format!("+{} {} {}", rng.gen_range(1..60), rng.gen_range(100..999), rng.gen_range(100_000..999_999)),
        });
        accounts.push(NewRecord {
            fields,
            owner_id: Some(owners[i % owners.len()].clone()),
        });
        account_meta.push((country, currency, domain));
    }
    let mut account_ids = Vec::with_capacity(ACCOUNTS);
    for chunk in accounts.chunks(records::MAX_BULK) {
        for r in records::create(db, &who, "account", chunk.to_vec(), true).await? {
            account_ids.push(r.id);
        }
    }

    let mut contacts = Vec::new();
    let mut opportunities = Vec::new();
    let mut activities = Vec::new();
    // The account country of each child record, in creation order per object.
    let mut child_countries: Vec<&'static str> = Vec::new();
    for (i, account) in account_ids.iter().enumerate() {
        let (country, currency, domain) = &account_meta[i];
        child_countries.push(country);
        let owner = owners[i % owners.len()].clone();
        for _ in 0..CONTACTS_PER_ACCOUNT {
            let (first, last) = (pick(&mut rng, FIRST), pick(&mut rng, LAST));
            contacts.push(NewRecord {
                fields: json!({
                    "first_name": first,
                    "last_name": last,
                    "email": format!("{}.{}@{domain}.example", first.to_lowercase(), last.to_lowercase()),
                    "title": pick(&mut rng, TITLES),
                    "account_id": account,
                }),
                owner_id: Some(owner.clone()),
            });
        }
        for n in 0..OPPORTUNITIES_PER_ACCOUNT {
            let (stage, probability, category) = stage(&mut rng);
            let closed = stage.starts_with("closed");
            // Closed deals closed in the last year; open ones close in the next six months.
            let offset = if closed {
                -rng.gen_range(1..365)
            } else {
                rng.gen_range(-20..183)
            };
            let amount = (rng.gen_range(2_000.0f64..250_000.0) / 100.0).round() * 100.0;
            opportunities.push(NewRecord {
                fields: json!({
                    "name": format!("{} — {}", pick(&mut rng, &["Renewal", "Expansion", "Pilot", "Platform", "Rollout", "Upgrade"]), n + 1),
                    "account_id": account,
                    "stage": stage,
                    "amount": { "value": amount, "currency": currency },
                    "close_date": date(today + Duration::days(offset)),
                    "probability": probability,
                    "forecast_category": category,
                    "type": pick(&mut rng, &["new_business", "expansion", "renewal"]),
                }),
                owner_id: Some(owners[(i + n) % owners.len()].clone()),
            });
        }
        for _ in 0..ACTIVITIES_PER_ACCOUNT {
            let due = today + Duration::days(rng.gen_range(-60..30));
            activities.push(NewRecord {
                fields: json!({
                    "subject": pick(&mut rng, &["Discovery call", "Send proposal", "Quarterly review", "Demo", "Contract follow-up"]),
                    "type": pick(&mut rng, &["call", "email", "meeting", "task"]),
                    "status": if due < today { "done" } else { "open" },
                    "due_date": date(due),
                    "account_id": account,
                }),
                owner_id: Some(owner.clone()),
            });
        }
    }
    let mut seeded: Vec<Seeded> = account_ids
        .into_iter()
        .zip(account_meta.iter())
        .map(|(id, (country, _, _))| Seeded {
            object: "account",
            id,
            country,
        })
        .collect();
    for (object, items, per_account) in [
        ("contact", contacts, CONTACTS_PER_ACCOUNT),
        ("opportunity", opportunities, OPPORTUNITIES_PER_ACCOUNT),
        ("activity", activities, ACTIVITIES_PER_ACCOUNT),
    ] {
        let mut n = 0;
        for chunk in items.chunks(records::MAX_BULK) {
            for r in records::create(db, &who, object, chunk.to_vec(), true).await? {
                seeded.push(Seeded {
                    object,
                    id: r.id,
                    country: child_countries[n / per_account],
                });
                n += 1;
            }
        }
    }
    Ok(seeded)
}
