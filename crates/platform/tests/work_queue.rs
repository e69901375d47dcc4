//! Work queues on a real nats-server: each message to one worker, again
//! until acknowledged, gone once acknowledged; a full stream refuses.
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, time::Duration};

use bytes::Bytes;
use platform::bus::{
    Bus, BusError, BusStream, Delivery, NatsArgs, NatsBus, Retention, StreamSettings,
};
use testkit::{NatsServer, eventually};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(20);

async fn jobs(nats: &NatsServer, max_messages: u64) -> BusStream {
    let urls = nats.url().parse().expect("a URL");
    let args = NatsArgs::default();
    let bus = NatsBus::connect(&urls, &args, "work-queue-test")
        .await
        .expect("connects");
    let stream = Bus::Nats(bus).stream(StreamSettings {
        retention: Retention::WorkQueue,
        ..StreamSettings::log("JOBS", "test.jobs", max_messages)
    });
    let prepared = tokio::time::timeout(PATIENCE, stream.prepare(&CancellationToken::new()))
        .await
        .expect("prepared in time");
    assert!(prepared);
    stream
}

fn seqs(batch: &[Delivery]) -> Vec<u64> {
    batch.iter().map(Delivery::seq).collect()
}

#[tokio::test]
async fn two_workers_share_the_messages_and_acknowledged_ones_leave() {
    let nats = NatsServer::start();
    let stream = jobs(&nats, 1000).await;
    for n in 0..100 {
        stream
            .publish(&format!("job-{n}"), Bytes::from(n.to_string()))
            .await
            .expect("stored");
    }
    let wait = Duration::from_secs(30);
    let mut workers = [
        stream.work_queue("writer", wait).await.expect("queue"),
        stream.work_queue("writer", wait).await.expect("queue"),
    ];
    let mut seen = Vec::new();
    let mut turn = 0;
    while seen.len() < 100 {
        let batch = tokio::time::timeout(
            PATIENCE,
            workers[turn % 2].fetch(30, Duration::from_millis(20)),
        )
        .await
        .expect("a batch in time")
        .expect("fetched");
        for delivery in &batch {
            delivery.ack().await.expect("acked");
        }
        seen.extend(seqs(&batch));
        turn += 1;
    }
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "no message twice: {seen:?}");
    assert_eq!(distinct, (1..=100).collect());
    eventually(
        "acknowledged messages to leave the stream",
        PATIENCE,
        || async {
            stream
                .bounds()
                .await
                .ok()
                .filter(|bounds| bounds.is_empty())
        },
    )
    .await;
    let lag = workers[0].lag().await.expect("lag");
    assert_eq!(lag.pending, 0);
}

#[tokio::test]
async fn an_unacknowledged_message_is_delivered_again() {
    let nats = NatsServer::start();
    let stream = jobs(&nats, 1000).await;
    stream
        .publish("only", Bytes::from_static(b"x"))
        .await
        .expect("stored");
    let wait = Duration::from_secs(1);
    let mut crashed = stream.work_queue("writer", wait).await.expect("queue");
    let first = tokio::time::timeout(PATIENCE, crashed.fetch(10, Duration::ZERO))
        .await
        .expect("in time")
        .expect("fetched");
    assert_eq!(seqs(&first), vec![1]);
    assert_eq!(first[0].deliveries, 1);
    let lag = crashed.lag().await.expect("lag");
    assert_eq!(lag.pending, 1);
    assert!(lag.oldest.is_some());
    drop((first, crashed));

    let mut survivor = stream.work_queue("writer", wait).await.expect("queue");
    let again = tokio::time::timeout(PATIENCE, survivor.fetch(10, Duration::ZERO))
        .await
        .expect("redelivered in time")
        .expect("fetched");
    assert_eq!(seqs(&again), vec![1]);
    assert_eq!(again[0].deliveries, 2);
    again[0].ack().await.expect("acked");
}

#[tokio::test]
async fn a_full_work_queue_refuses_new_messages() {
    let nats = NatsServer::start();
    let stream = jobs(&nats, 3).await;
    for n in 0..3 {
        stream
            .publish(&format!("job-{n}"), Bytes::from_static(b"x"))
            .await
            .expect("stored");
    }
    let refused = stream.publish("job-3", Bytes::from_static(b"x")).await;
    assert!(matches!(refused, Err(BusError::Full(_))), "{refused:?}");
    assert_eq!(stream.messages().await.expect("count"), 3);
    // A retry of a stored message is still recognised as a duplicate.
    let retried = stream.publish("job-0", Bytes::from_static(b"x")).await;
    assert!(retried.is_ok_and(|published| published.duplicate));
}
