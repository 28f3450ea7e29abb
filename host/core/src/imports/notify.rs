//! `cfhost:callflow/notify`: notifications for the call's account, built into KAZOO's wire
//! format from the live call and handed to the sink, within the notification size limit.

use super::InstanceState;
use crate::bindings::cfhost::callflow::notify::{Host, Notification, PublishError};
use crate::policy::Capability;

impl Host for InstanceState {
    async fn publish(
        &mut self,
        notification: Notification,
    ) -> wasmtime::Result<Result<(), PublishError>> {
        let context = self.granted(Capability::Notify)?;
        let size = strings_size(&notification);
        if size > self.limits.notification_bytes {
            self.refused.outputs += 1;
            let refusal = format!(
                "notification of {size} bytes exceeds the limit of {} bytes",
                self.limits.notification_bytes
            );
            tracing::warn!(module = &*self.module_name, "{refusal}");
            let limit = u32::try_from(self.limits.notification_bytes).unwrap_or(u32::MAX);
            return Ok(Err(PublishError::TooLarge(limit)));
        }
        let now = context.switch().now();
        let result = context
            .notifier()
            .publish(context.call(), now, &notification)
            .await;
        let error = result.as_ref().err().map(ToString::to_string);
        if let Some(error) = &error {
            tracing::error!(
                module = &*self.module_name,
                account = context.call().details().account_id,
                "the host could not publish a notification: {error}"
            );
            self.host_fault = Some(error.clone());
        }
        let routing_key = result.as_deref().ok();
        context
            .trace()
            .published(&self.module_name, routing_key, error.clone());
        Ok(error.map_or(Ok(()), |error| Err(PublishError::Unavailable(error))))
    }
}

/// The bytes of every string a module put into a notification.
fn strings_size(notification: &Notification) -> usize {
    let list = |items: &[String]| items.iter().map(String::len).sum::<usize>();
    match notification {
        Notification::MissedCall(n) => list(&n.to),
        Notification::CfNotification(n) => {
            n.template_id.len()
                + list(&n.to)
                + n.comments.as_ref().map_or(0, String::len)
                + n.notification_media.as_ref().map_or(0, String::len)
        }
    }
}
