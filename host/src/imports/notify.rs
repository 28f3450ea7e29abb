//! `cfhost:callflow/notify`: notifications for the call's account, built into KAZOO's wire
//! format from the live call and handed to the sink.

use super::InstanceState;
use crate::bindings::Capability;
use crate::bindings::cfhost::callflow::notify::{Host, Notification};

impl Host for InstanceState {
    async fn publish(
        &mut self,
        notification: Notification,
    ) -> wasmtime::Result<Result<(), String>> {
        let env = self.granted(Capability::Notify)?;
        let now = env.switch.now();
        let result = env.notifier.publish(&env.call, now, &notification).await;
        env.trace.published(&self.module_name, &result);
        Ok(result.map(|_| ()).map_err(|e| e.to_string()))
    }
}
