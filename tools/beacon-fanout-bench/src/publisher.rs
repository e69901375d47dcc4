//! Publishing at exactly the requested rate, straight to JetStream.
//!
//! The coordinator publishes itself instead of running `beacon broadcaster`
//! with a fixed interval, for two reasons: the broadcaster waits for each
//! acknowledgement before it starts the next wait, so its rate is slightly
//! below 1000/interval; and `sent_at` has millisecond resolution, so a
//! message stamped mid-millisecond would add up to 1 ms to every latency.
//! Here message `k` is due at a whole millisecond, stamped with it, and
//! published at that instant; acknowledgements are awaited concurrently.
//! It goes through the same bus code as the broadcaster (`Nats-Msg-Id`,
//! stored before acknowledged), so receivers see ordinary messages.

use std::{
    ops::RangeInclusive,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use beacon_wire::{Broadcast, Timestamp};
use bytes::Bytes;
use platform::bus::BusStream;

/// How long before a message is due the publisher stops sleeping and spins:
/// more than tokio's one-millisecond timer granularity.
const SPIN: Duration = Duration::from_micros(2_500);

/// Publishes one message now and returns its sequence.
pub async fn publish_now(bus: &BusStream, id: &str) -> anyhow::Result<u64> {
    let payload = payload(id, Timestamp::now(), 0)?;
    let published = bus.publish(id, payload).await?;
    Ok(published.seq)
}

/// Publishes `count` messages at `rate` per second, ids `<run>-<k>`, and
/// returns the range of sequences they were stored under.
pub async fn publish_at_rate(
    bus: &BusStream,
    run: &str,
    rate: f64,
    count: u64,
) -> anyhow::Result<RangeInclusive<u64>> {
    let period_ms = 1000.0 / rate;
    let interval_ms = period_ms.round() as u64;
    let start_ms = millis_since_epoch(SystemTime::now()) + 20;
    let mut acks = Vec::new();
    for k in 0..count {
        let due_ms = start_ms + (k as f64 * period_ms).round() as u64;
        let due = UNIX_EPOCH + Duration::from_millis(due_ms);
        wait_until(due).await;
        let id = format!("{run}-{k}");
        let payload = payload(&id, Timestamp::from(due), interval_ms)?;
        let bus = bus.clone();
        acks.push(tokio::spawn(async move { bus.publish(&id, payload).await }));
    }
    let (mut first, mut last) = (u64::MAX, 0);
    for ack in acks {
        let published = ack.await.context("publish task")??;
        first = first.min(published.seq);
        last = last.max(published.seq);
    }
    anyhow::ensure!(count > 0 && last >= first, "nothing was published");
    anyhow::ensure!(
        last - first + 1 == count,
        "published {count} messages but they span sequences {first}..={last}"
    );
    Ok(first..=last)
}

fn payload(id: &str, sent_at: Timestamp, interval_ms: u64) -> anyhow::Result<Bytes> {
    let broadcast = Broadcast {
        id: id.to_owned(),
        text: "Hello world".to_owned(),
        sender: "beacon-fanout-bench".to_owned(),
        sent_at,
        interval_ms,
    };
    Ok(Bytes::from(broadcast.encode()?))
}

/// Sleeps until shortly before `due`, then spins to it: tokio's timers fire
/// up to a millisecond late, and lateness here would count as latency.
async fn wait_until(due: SystemTime) {
    if let Ok(ahead) = due.duration_since(SystemTime::now())
        && ahead > SPIN
    {
        tokio::time::sleep(ahead - SPIN).await;
    }
    while SystemTime::now() < due {
        std::hint::spin_loop();
    }
}

fn millis_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}
