//! `plinth jobs watch`: follow a background job from a terminal — a progress bar fed
//! by the job's event stream (`GET /api/v1/jobs/{id}/events`) — and exit with its
//! outcome: 0 succeeded, 1 failed, 2 cancelled. A dropped connection (a server
//! restart) is resumed; a problem answer (no such job, a bad token) is reported with
//! its title and detail.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::block_on;

/// `plinth jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Follow a job with a progress bar until it ends; exit 0 if it succeeded, 1 if it
    /// failed, 2 if it was cancelled.
    Watch(WatchArgs),
}

/// `plinth jobs watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The job id.
    pub id: String,
    /// The server's base URL.
    #[arg(long, env = "PLINTH_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// An API key of the user the job runs as (or of an admin).
    #[arg(long, env = "PLINTH_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// The finished job as the server last showed it.
    pub job: Value,
}

impl Outcome {
    /// The exit code for the outcome.
    pub fn exit_code(&self) -> ExitCode {
        match self.state.as_str() {
            "succeeded" => ExitCode::SUCCESS,
            "cancelled" => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }

    /// One line saying how it ended.
    pub fn summary(&self) -> String {
        let j = &self.job;
        match self.state.as_str() {
            "succeeded" => {
                let mut line = format!("succeeded after {} steps", j["steps"]);
                if let Some(value) = j["result"]["value"].as_object().map(|_| &j["result"]["value"]) {
                    line.push_str(&format!(": {value}"));
                }
                if let Some(url) = j["result"]["file_url"].as_str() {
                    line.push_str(&format!(" (file {url})"));
                }
                line
            }
            "cancelled" => format!("cancelled after {} steps", j["steps"]),
            _ => format!("failed: {}", j["error"].as_str().unwrap_or("no reason given")),
        }
    }
}

/// Run a `plinth jobs` command.
pub fn run(cmd: JobsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCommand::Watch(args) => {
            let bar = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let outcome = block_on(watch(&args, bar))??;
            println!("{}", outcome.summary());
            Ok(outcome.exit_code())
        }
    }
}

/// The bar's look: with a total, a bar and an ETA; without, a spinner and a count.
fn style(with_total: bool) -> ProgressStyle {
    let template = if with_total {
        "{msg:20!} [{bar:30}] {pos}/{len} ({percent}%) ETA {eta}"
    } else {
        "{spinner} {msg:20!} {pos} done"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Show `job` on `bar`.
fn draw(bar: &ProgressBar, job: &Value) {
    let progress = &job["progress"];
    let done = progress["done"].as_u64().unwrap_or(0);
    match progress["total"].as_u64() {
        Some(total) => {
            if bar.length() != Some(total) {
                bar.set_style(style(true));
                bar.set_length(total);
            }
        }
        None => bar.set_style(style(false)),
    }
    bar.set_position(done);
    let message = progress["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| job["state"].as_str().unwrap_or("").to_string());
    bar.set_message(message);
}

/// Follow job `args.id` until it ends, drawing a progress bar on stderr when `bar`.
/// Reconnects (up to 30 times, a second apart) when the stream drops before the end.
pub async fn watch(args: &WatchArgs, bar: bool) -> anyhow::Result<Outcome> {
    let target = if bar {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("{}/api/v1/jobs/{}/events", args.server.trim_end_matches('/'), args.id);
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(style(false));
    let mut drops = 0;
    loop {
        let response = http
            .get(&url)
            .bearer_auth(&args.token)
            .header("accept", "text/event-stream")
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) if drops < 30 => {
                drops += 1;
                tracing::debug!(error = %e, "the job's event stream is unreachable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e).context(format!("could not reach {}", args.server)),
        };
        if !response.status().is_success() {
            let status = response.status();
            let problem: Value = response.json().await.unwrap_or_default();
            bail!(
                "{} ({status}): {}",
                problem["title"].as_str().unwrap_or("the server refused"),
                problem["detail"].as_str().unwrap_or("")
            );
        }
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut event, mut data) = ("message", String::new());
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = if e.trim() == "end" { "end" } else { "progress" };
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                let Ok(job) = serde_json::from_str::<Value>(&data) else {
                    continue;
                };
                draw(&bar, &job);
                if event == "end" {
                    bar.finish();
                    let state = job["state"].as_str().unwrap_or("failed").to_string();
                    return Ok(Outcome { state, job });
                }
            }
        }
        drops += 1;
        if drops > 30 {
            bail!("the job's event stream kept dropping; the job is still running on the server");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
