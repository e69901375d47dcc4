//! The checks: the stream against what the broadcasters generated, and each
//! client against the stream.
//!
//! A broadcaster's ids are `<run id>-<counter>` with counters 1, 2, 3… in
//! the order it generated them, so "every generated message exactly once,
//! in order" means: for each sender, the counters stored are exactly
//! `1..=generated`, in increasing stream order, each once.

use std::collections::{HashMap, HashSet};

use async_nats::jetstream::{self, consumer::DeliverPolicy};
use futures::StreamExt;

use crate::clients::ClientLog;

/// Losses and duplicates found, with a few examples to debug them.
#[derive(Debug, Default)]
pub struct Findings {
    /// Messages missing.
    pub lost: u64,
    /// Messages seen more than once (or out of order).
    pub duplicated: u64,
    /// The first problems, described.
    pub examples: Vec<String>,
}

impl Findings {
    fn note(&mut self, example: String) {
        if self.examples.len() < 20 {
            self.examples.push(example);
        }
    }

    /// Adds `other`'s counts and examples to these.
    pub fn merge(&mut self, other: Findings) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        for example in other.examples {
            self.note(example);
        }
    }
}

/// Reads the whole stream and checks it against `generated` (messages per
/// sender). Returns the findings and the newest sequence.
pub async fn stream(
    nats_url: &str,
    stream: &str,
    generated: &HashMap<String, u64>,
) -> anyhow::Result<(Findings, u64)> {
    let client = async_nats::connect(nats_url).await?;
    let jetstream = jetstream::new(client);
    let mut handle = jetstream.get_stream(stream).await?;
    let state = handle.info().await?.state.clone();
    let consumer = handle
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;

    let mut findings = Findings::default();
    let mut ids = HashSet::new();
    let mut counters: HashMap<String, (String, u64)> = HashMap::new();
    let mut per_sender: HashMap<String, HashSet<u64>> = HashMap::new();
    let mut expected_seq = state.first_sequence;
    while expected_seq <= state.last_sequence {
        let Some(message) = messages.next().await else {
            anyhow::bail!("the stream ended at {expected_seq}");
        };
        let message = message?;
        let seq = message
            .info()
            .map_err(|err| anyhow::anyhow!("{err}"))?
            .stream_sequence;
        if seq != expected_seq {
            findings.note(format!(
                "stream sequence {seq} follows {}",
                expected_seq - 1
            ));
        }
        expected_seq = seq + 1;
        let body: serde_json::Value = serde_json::from_slice(&message.payload)?;
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        let sender = body["sender"].as_str().unwrap_or_default().to_owned();
        if !ids.insert(id.clone()) {
            findings.duplicated += 1;
            findings.note(format!("id {id} stored again at seq {seq}"));
            continue;
        }
        let Some((run, counter)) = id
            .rsplit_once('-')
            .and_then(|(run, counter)| Some((run.to_owned(), counter.parse::<u64>().ok()?)))
        else {
            findings.note(format!("unexpected id {id:?} at seq {seq}"));
            continue;
        };
        let previous = counters.insert(sender.clone(), (run.clone(), counter));
        if let Some((previous_run, previous_counter)) = previous
            && previous_run == run
            && counter <= previous_counter
        {
            findings.duplicated += 1;
            findings.note(format!(
                "{sender}: counter {counter} after {previous_counter} (seq {seq})"
            ));
        }
        per_sender.entry(sender).or_default().insert(counter);
    }
    for (sender, generated) in generated {
        let stored = per_sender.get(sender);
        let missing: Vec<u64> = (1..=*generated)
            .filter(|counter| !stored.is_some_and(|stored| stored.contains(counter)))
            .collect();
        if !missing.is_empty() {
            findings.lost += missing.len() as u64;
            findings.note(format!(
                "{sender}: {} generated messages not stored, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        let extra = stored.map_or(0, |stored| {
            stored.iter().filter(|c| **c > *generated).count()
        });
        if extra > 0 {
            findings.note(format!(
                "{sender}: {extra} stored messages beyond the {generated} it reported"
            ));
        }
    }
    Ok((findings, state.last_sequence))
}

/// Checks that each client saw every sequence from its first one up to
/// `last`, once each, in order.
pub fn clients(logs: &[ClientLog], last: u64) -> Findings {
    let mut findings = Findings::default();
    for (index, log) in logs.iter().enumerate() {
        // A gap event leaves a hole in the sequences, counted below.
        for (from, to) in &log.gaps {
            findings.note(format!("client {index}: gap event {from}..={to}"));
        }
        if log.mismatched > 0 {
            findings.note(format!(
                "client {index}: {} events whose data did not match their id",
                log.mismatched
            ));
        }
        let Some(first) = log.seqs.first() else {
            findings.lost += 1;
            findings.note(format!("client {index}: saw nothing"));
            continue;
        };
        let mut previous = *first;
        for &seq in &log.seqs[1..] {
            if seq <= previous {
                findings.duplicated += 1;
                findings.note(format!("client {index}: {seq} after {previous}"));
                continue;
            }
            if seq > previous + 1 {
                findings.lost += seq - previous - 1;
                findings.note(format!(
                    "client {index}: {}..={} missing",
                    previous + 1,
                    seq - 1
                ));
            }
            previous = seq;
        }
        if previous < last {
            findings.lost += last - previous;
            findings.note(format!("client {index}: stopped at {previous} of {last}"));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(seqs: &[u64]) -> ClientLog {
        ClientLog {
            seqs: seqs.to_vec(),
            ..ClientLog::default()
        }
    }

    #[test]
    fn a_complete_client_is_clean() {
        let findings = clients(&[log(&[5, 6, 7, 8])], 8);
        assert_eq!((findings.lost, findings.duplicated), (0, 0));
    }

    #[test]
    fn holes_repeats_and_short_clients_are_counted() {
        let findings = clients(&[log(&[1, 2, 4, 4, 5]), log(&[3, 4])], 6);
        assert_eq!(findings.lost, 1 + 1 + 2);
        assert_eq!(findings.duplicated, 1);
        assert!(!findings.examples.is_empty());
    }

    #[test]
    fn a_gap_event_is_a_loss() {
        let mut with_gap = log(&[1, 5]);
        with_gap.gaps.push((2, 4));
        let findings = clients(&[with_gap], 5);
        assert_eq!(findings.lost, 3);
        assert!(findings.examples.iter().any(|e| e.contains("gap event")));
    }
}
