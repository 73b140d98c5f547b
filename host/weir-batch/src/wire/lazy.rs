//! The wire form built on first use: a batch whose plugins ask nothing of it
//! (a no-op plugin, a chain that returns at once) is never even indexed, and
//! leaves as the batch it arrived as.

use std::cell::OnceCell;

use bytes::Bytes;
use weir_pipeline::{Batch, Signal};

use super::WireBatch;
use crate::BatchError;

pub struct LazyWire {
    signal: Signal,
    payload: Bytes,
    /// The receiver's count, while the batch is not indexed.
    items: usize,
    built: OnceCell<Result<WireBatch, BatchError>>,
    /// Stands in for a batch that cannot be indexed: reads see no entities.
    empty: OnceCell<WireBatch>,
}

impl LazyWire {
    pub fn new(batch: &Batch) -> Self {
        LazyWire {
            signal: batch.signal,
            payload: batch.payload.clone(),
            items: batch.items,
            built: OnceCell::new(),
            empty: OnceCell::new(),
        }
    }

    fn built(&self) -> &Result<WireBatch, BatchError> {
        self.built
            .get_or_init(|| WireBatch::build(self.signal, self.payload.clone()))
    }

    /// The indexed batch (one without entities if the bytes cannot be framed;
    /// receivers validate every request, so only a hand-made batch gets there).
    pub fn get(&self) -> &WireBatch {
        match self.built() {
            Ok(w) => w,
            Err(_) => self.empty.get_or_init(|| WireBatch::empty(self.signal)),
        }
    }

    /// The indexed batch to change, or why the bytes cannot be.
    pub fn get_mut(&mut self) -> Result<&mut WireBatch, BatchError> {
        self.built();
        match self.built.get_mut() {
            Some(Ok(w)) => Ok(w),
            Some(Err(e)) => Err(e.clone()),
            None => Err(BatchError::Decode("the batch was not indexed".into())),
        }
    }

    pub fn signal(&self) -> Signal {
        self.signal
    }

    pub fn items(&self) -> usize {
        match self.built.get() {
            Some(Ok(w)) => w.items(),
            _ => self.items,
        }
    }

    pub fn to_otlp(&self) -> Vec<u8> {
        match self.built.get() {
            Some(Ok(w)) => w.to_otlp(),
            _ => self.payload.to_vec(),
        }
    }

    /// The result; a batch never indexed or never changed leaves as it came.
    pub fn finish(self) -> Vec<(Option<String>, Batch)> {
        match self.built.into_inner() {
            Some(Ok(w)) => w.finish(),
            _ if self.items == 0 => Vec::new(),
            _ => vec![(None, Batch::new(self.signal, self.payload, self.items))],
        }
    }
}
