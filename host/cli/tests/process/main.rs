//! The process tests of the `cfhost` binary: each starts `cfhost` itself (`simulate`, `serve`,
//! `module check`, `new-module`) and talks to it as an operator would.

mod amqp;
mod api_fuzz;
mod cli;
mod clients;
mod console;
mod directory;
mod edge;
mod mailer;
mod serve;
mod store;
