//! (being written)
pub async fn handler() -> &'static str { "not yet" }
