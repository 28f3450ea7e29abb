//! One admitted call: the caller's server dialog, a task driving its INVITE transaction, a
//! watcher that turns the caller's BYE or CANCEL into a channel event at whatever moment it
//! comes, and the callflow run on a [`SipSwitch`]. When the flow is done, the caller's leg is
//! ended if it is not yet, and the dialog is released.

use std::sync::Arc;

use cfhost_core::call::{Call, CallDetails, ChannelEvent, Hangup, HangupCause, HangupEvent};
use cfhost_core::executor::{CallReport, EndReason};
use cfhost_core::runtime::CallError;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::transaction::transaction::Transaction;

use crate::in_dialog::InDialog;
use crate::leg::CallerLeg;
use crate::shared::CallSummary;
use crate::shared::{Admitted, reply};
use crate::switch::SipSwitch;

/// Who placed a call, once it is authorised.
pub(crate) enum Caller {
    /// A carrier trunk: an offnet call for the account that has the number.
    Trunk { name: String },
    /// An authenticated device of the account.
    Device { id: String },
}

/// Runs the call to its end (its termination callbacks included).
pub(crate) async fn run(
    admitted: Admitted,
    mut tx: Transaction,
    details: CallDetails,
    caller: Caller,
    started: std::time::Instant,
) {
    let shared = Arc::clone(&admitted.0);
    let (state_tx, state_rx) = shared.dialogs.new_dialog_state_channel();
    let dialog = match shared.dialogs.get_or_create_server_invite(
        &tx,
        state_tx,
        None,
        Some(shared.contact.clone()),
    ) {
        Ok(dialog) => dialog,
        Err(e) => {
            tracing::warn!("cannot take the call: {e}");
            return reply(&shared, &mut tx, 500, vec![]).await;
        }
    };
    let offer = tx.original.body.clone();
    let signalling = crate::shared::source(&tx).map(|address| address.ip());
    let call = Arc::new(Call::new(details));
    let from = match &caller {
        Caller::Trunk { name } => format!("trunk {name}"),
        Caller::Device { id } => format!("device {id}"),
    };
    let d = call.details();
    let caller_number = d.caller_id_number.as_deref().unwrap_or("anonymous");
    call.trace().switch(format!(
        "INVITE {} from {caller_number} ({from}) to {}",
        d.call_id, d.request
    ));
    let listed = shared.list_active(Arc::clone(&call), from.clone());
    // The INVITE server transaction: 100 Trying, the ACK, the caller's CANCEL.
    let mut driver = dialog.clone();
    tokio::spawn(async move {
        if let Err(e) = driver.handle(&mut tx).await {
            tracing::debug!("caller's INVITE transaction: {e}");
        }
    });
    let switch = Arc::new(SipSwitch::new(CallerLeg::new(
        Arc::clone(&shared),
        dialog.clone(),
        offer,
        signalling,
        started,
    )));
    let watcher = tokio::spawn(watch_caller(
        state_rx,
        Arc::clone(&call),
        Arc::clone(&switch),
    ));
    let result = shared
        .runtime
        .run_call(Arc::clone(&call), Arc::clone(&switch) as _)
        .await;
    switch.finish(&call).await;
    watcher.abort();
    shared.dialogs.remove_dialog(&dialog.id());
    let label = result_label(&result);
    shared.metrics.call(&label);
    let d = call.details();
    tracing::info!(
        "SIP: call {} in {}: {} ({from}) to {}: {label} after {:.1} s",
        d.call_id,
        d.account_id,
        d.caller_id_number.as_deref().unwrap_or("anonymous"),
        d.request,
        started.elapsed().as_secs_f64()
    );
    let trace = match &result {
        Ok(report) => report.trace.iter().map(ToString::to_string).collect(),
        Err(e) => {
            tracing::warn!("SIP call: {e}");
            let mut trace: Vec<String> = call
                .trace()
                .take()
                .iter()
                .map(ToString::to_string)
                .collect();
            trace.push(format!("error: {e}"));
            trace
        }
    };
    let details = call.details();
    shared.ended(CallSummary {
        call_id: details.call_id.clone(),
        account_id: details.account_id.clone(),
        result: label,
        trace,
    });
    drop(listed);
    drop(admitted);
}

/// Applies the caller's hangup to the call the moment it comes, and hands what it sends
/// inside its dialog (re-INVITE, UPDATE, INFO, OPTIONS) to the switch.
async fn watch_caller(mut states: DialogStateReceiver, call: Arc<Call>, switch: Arc<SipSwitch>) {
    while let Some(state) = states.recv().await {
        let state = match InDialog::of(state) {
            Ok((_, request)) => {
                switch.leg.take_caller_request(request).await;
                continue;
            }
            Err(state) => *state,
        };
        let DialogState::Terminated(_, reason) = state else {
            continue;
        };
        let (hangup, what) = match reason {
            TerminatedReason::UacCancel => {
                // rsipstack's INVITE transaction took the CANCEL (it never reaches dispatch),
                // answered it 200 and the INVITE 487: count all three here.
                let metrics = &switch.leg.shared.metrics;
                metrics.request("CANCEL");
                metrics.response(200);
                metrics.response(487);
                (
                    Hangup::new(HangupCause::ORIGINATOR_CANCEL, 487),
                    "the caller cancelled (CANCEL)",
                )
            }
            TerminatedReason::UacBye => {
                // The dialog answers the BYE 200 itself.
                switch.leg.shared.metrics.response(200);
                (
                    Hangup::new(HangupCause::NORMAL_CLEARING, 200),
                    "the caller hung up (BYE)",
                )
            }
            TerminatedReason::Timeout => (
                Hangup::new(HangupCause::from("RECOVERY_ON_TIMER_EXPIRE"), 408),
                "the caller's leg timed out",
            ),
            // cfhost's own BYE or final response: the switch applied it already.
            _ => continue,
        };
        call.trace().switch(what);
        let call_id = call.details().call_id.clone();
        call.apply(&ChannelEvent::Destroy(HangupEvent::of(&call_id, &hangup)));
    }
}

/// How a call ended, for the calls counter.
fn result_label(result: &Result<CallReport, CallError>) -> String {
    match result {
        Err(_) => "error".to_string(),
        Ok(report) if report.flags.bridged => "bridged".to_string(),
        Ok(report) if report.flags.message_left => "message_left".to_string(),
        Ok(report) => match report.end {
            EndReason::ChannelDestroyed => "caller_hung_up",
            EndReason::FlowEnded => "flow_ended",
            EndReason::BranchLimit => "branch_limit",
            EndReason::Transferred => "transferred",
            EndReason::FailedClosed => "failed_closed",
            EndReason::CallBudget => "call_budget",
        }
        .to_string(),
    }
}
