//! weir's durable export queue (being written).
