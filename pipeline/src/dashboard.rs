//! The feed of derived records to the dashboard (`stockstream-dashboard`).
//!
//! A run given a [`DashboardFeed`] sends every batch of derived
//! records to it, as the chains wrote them (JSON, one record per element), right after the
//! batch is processed and before it is committed. The run never waits for the dashboard: when
//! the channel is full the batch is dropped for it and counted in [`FeedStats`], so a slow
//! browser can never stall the pipeline; the dashboard server should then send its clients a
//! fresh snapshot (for instance the latest bars per symbol), not try to replay.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

use crate::outputs::Stream;

/// Derived records of one stream from one batch of input.
#[derive(Debug)]
pub struct DerivedBatch {
    pub stream: Stream,
    /// Input position of the batch's first record.
    pub first_offset: u64,
    /// JSON records as the chain produced them.
    pub records: Vec<Vec<u8>>,
}

/// The sending end the dashboard server hands to the run.
pub type DashboardFeed = SyncSender<Arc<DerivedBatch>>;

/// What happened to the batches offered to the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    pub sent: u64,
    /// Dropped because the dashboard was behind.
    pub dropped: u64,
    /// The receiver is gone (the dashboard stopped); the run goes on without it.
    pub disconnected: bool,
}

impl FeedStats {
    pub fn offer(&mut self, feed: &DashboardFeed, batch: DerivedBatch) {
        if self.disconnected {
            return;
        }
        match feed.try_send(Arc::new(batch)) {
            Ok(()) => self.sent += 1,
            Err(TrySendError::Full(_)) => self.dropped += 1,
            Err(TrySendError::Disconnected(_)) => self.disconnected = true,
        }
    }
}
