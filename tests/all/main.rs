//! Every integration test of the runtime, one module per topic, in one test binary (as
//! wasmtime's `tests/all`), so that wasmtime is linked once.

mod engine;
mod executor;
mod fairness;
mod fuzz;
mod hot_reload;
mod layers;
mod lifecycle;
mod loading;
mod missed_call_alert;
mod notification;
mod polyglot;
mod sip;
mod store;
mod tenant_safety;
mod time_of_day;
mod wit_evolution;
