//! One incoming transaction, by what it is: a request within a dialog goes to its dialog; out
//! of dialog, a request from an address that is not a trunk's passes the [`crate::guard`]
//! first (its rate, its failed logins: past them it gets no answer at all), then `REGISTER`
//! goes to the registrar, `OPTIONS` is answered, and an `INVITE` is authorised (a trunk by its
//! source address, a device by digest, anyone else refused), admitted (caps, shutdown: only
//! authorised calls count) and routed to its account's callflow, then run as a call
//! ([`crate::call`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use cfhost_core::accounts::{Account, CallerId, Device, normalize_e164};
use cfhost_core::call::CallDetails;
use rsipstack::sip::headers::{Contact, Expires, ProxyAuthenticate, RetryAfter, WwwAuthenticate};
use rsipstack::sip::prelude::*;
use rsipstack::sip::{Header, Method};
use rsipstack::transaction::transaction::Transaction;

use crate::auth::{Attempt, Verdict, claimed_username};
use crate::call::Caller;
use crate::edge::{EdgeCaller, edge_caller};
use crate::guard::Failed;
use crate::registrar::{MAX_EXPIRES, Origin, Wanted};
use crate::shared::{Admitted, Refusal, Shared, is_in_dialog, reply, source};

/// Handles one transaction to its end.
pub(crate) async fn dispatch(shared: Arc<Shared>, mut tx: Transaction) {
    let method = tx.original.method;
    shared.metrics.request(&method.to_string());
    if truncated(&tx) {
        // RFC 3261 §18.3: over UDP, a body shorter than its Content-Length is discarded.
        refused(&shared, &tx, "truncated");
        return;
    }
    if let Some(code) = malformed(&tx) {
        refused(&shared, &tx, "malformed");
        return reply(&shared, &mut tx, code, vec![]).await;
    }
    if is_in_dialog(&tx) {
        match shared.dialogs.match_dialog(&tx) {
            Some(mut dialog) => {
                if let Err(e) = dialog.handle(&mut tx).await {
                    tracing::debug!("in-dialog {method}: {e}");
                }
                // rsipstack answers in-dialog requests with what cfhost relayed (a
                // re-INVITE's answer): count it. A BYE's 200 is sent by the dialog itself
                // and counted where its end is seen (`crate::call`, `crate::bridge`).
                if let Some(response) = &tx.last_response {
                    shared.metrics.response(response.status_code.code());
                }
            }
            None if method == Method::Ack => {}
            None => reply(&shared, &mut tx, 481, vec![]).await,
        }
        return;
    }
    if let Some(from) = source(&tx)
        && !shared.settings.is_known_peer(from.ip())
        && !shared.guard.admits(from.ip(), Instant::now())
    {
        // No answer: a flood or a blocked address costs nothing more.
        shared.metrics.rejected("rate_limited");
        return;
    }
    match method {
        Method::Register if shared.settings.edge.is_some() => {
            // Behind an edge, devices register there: this node keeps no registrations.
            refused(&shared, &tx, "register_at_the_edge");
            reply(&shared, &mut tx, 403, vec![]).await;
        }
        Method::Register => register(&shared, &mut tx).await,
        // A draining node says so, and the edge's dispatcher sends it no new calls.
        Method::Options if !shared.admission.accepting.load(Ordering::Acquire) => {
            reply(&shared, &mut tx, 503, vec![]).await;
        }
        Method::Options => reply(&shared, &mut tx, 200, vec![]).await,
        Method::Invite => invite(shared, tx).await,
        Method::Ack => {}
        Method::Bye | Method::Cancel => reply(&shared, &mut tx, 481, vec![]).await,
        _ => reply(&shared, &mut tx, 405, vec![]).await,
    }
}

/// The answer RFC 3261 gives a request before anything looks at it, if it has one: a CSeq
/// naming another method than the request's (400, §8.2.2), an INVITE that may be forwarded
/// no further (`Max-Forwards: 0`, 483, §16.3: cfhost's legs would carry it on). An ACK gets
/// no answer, so none of it.
fn malformed(tx: &Transaction) -> Option<u16> {
    let request = &tx.original;
    if request.method == Method::Ack {
        return None;
    }
    let cseq = request.cseq_header().ok().and_then(|h| h.typed().ok());
    if cseq.is_none_or(|cseq| cseq.method != request.method) {
        return Some(400);
    }
    let max_forwards = request
        .max_forwards_header()
        .ok()
        .and_then(|h| h.value().trim().parse::<u32>().ok());
    if request.method == Method::Invite && max_forwards == Some(0) {
        return Some(483);
    }
    None
}

/// Whether a request came over UDP with less body than its Content-Length says (a datagram
/// cut short, or a lie).
fn truncated(tx: &Transaction) -> bool {
    let over_udp = matches!(
        tx.connection,
        Some(rsipstack::transport::SipConnection::Udp(_))
    );
    let declared = tx
        .original
        .header_value("Content-Length")
        .and_then(|value| value.parse::<usize>().ok());
    over_udp && declared.is_some_and(|length| length > tx.original.body.len())
}

/// A 401 challenging a REGISTER from `to` in `realm` (`stale`: the nonce it used has expired
/// or was used already).
async fn challenge(
    shared: &Shared,
    tx: &mut Transaction,
    realm: &str,
    to: IpAddr,
    stale: bool,
    now: SystemTime,
) {
    shared.metrics.registration("challenged");
    let challenge = shared.nonces.challenge(realm, to, stale, now);
    reply(
        shared,
        tx,
        401,
        vec![WwwAuthenticate::new(challenge).into()],
    )
    .await;
}

/// Counts a refused request and logs it (what, from where, why) within the log's budget, so
/// that a flood cannot fill the log.
fn refused(shared: &Shared, tx: &Transaction, why: &'static str) {
    shared.metrics.rejected(why);
    let Some(held_back) = shared.refusal_log.admit() else {
        return;
    };
    let from = source(tx).map_or_else(|| "?".to_string(), |a| a.to_string());
    let more = if held_back > 0 {
        format!("; {held_back} refusals before it were not logged")
    } else {
        String::new()
    };
    let request = &tx.original;
    tracing::info!(
        "SIP: refused {} {} from {from}: {why}{more}",
        request.method,
        request.uri
    );
}

/// Who `device` calls as, as KAZOO has it: its own internal caller id, else its owner's; else
/// what its From says when the operator lets the From set it (`from`); else its name and SIP
/// user name. A device never calls as someone else by writing another From.
fn device_caller_id(account: &Account, device: &Device, from: Option<CallerId>) -> CallerId {
    let owner = device
        .document
        .owner_id
        .as_deref()
        .and_then(|owner| account.user(owner));
    let configured = [
        device.document.caller_id.internal.as_ref(),
        owner.and_then(|user| user.caller_id.internal.as_ref()),
    ];
    if let Some(id) = configured
        .into_iter()
        .flatten()
        .find(|id| id.number.is_some())
    {
        return CallerId {
            name: id.name.clone().or_else(|| device.document.name.clone()),
            number: id.number.clone(),
        };
    }
    if let Some(from) = from.filter(|from| from.number.is_some()) {
        return from;
    }
    CallerId {
        name: device.document.name.clone(),
        number: Some(device.document.sip.username.clone()),
    }
}

/// Where `tx` (which came from `from`) came from, as the registrar weighs NAT.
fn origin(tx: &Transaction, from: SocketAddr) -> Origin {
    let tcp = tx
        .connection
        .as_ref()
        .is_some_and(|c| matches!(c, rsipstack::transport::SipConnection::Tcp(_)));
    let via = tx
        .original
        .top_via_header()
        .ok()
        .and_then(|via| via.typed().ok())
        .and_then(|via| SocketAddr::try_from(via.uri.host_with_port).ok());
    Origin {
        source: from,
        tcp,
        via,
    }
}

/// Checks the credentials `header` of `request`, which came from `source`, in `realm`.
fn verify_credentials(
    shared: &Shared,
    request: &rsipstack::sip::Request,
    header: &str,
    realm: &str,
    source: IpAddr,
    password: impl FnOnce(&str) -> Option<String>,
    now: SystemTime,
) -> (Verdict, Option<String>) {
    let request_uri = request.uri.to_string();
    let attempt = Attempt {
        header,
        method: &request.method,
        request_uri: &request_uri,
        source,
        realm,
    };
    shared.nonces.verify(&attempt, password, now)
}

/// Counts a failed login from `source` (claiming `username`), and says so when it blocks.
fn login_failed(shared: &Shared, source: IpAddr, username: Option<&str>) {
    if shared.guard.failed(source, username, Instant::now()) == Failed::Blocked {
        tracing::warn!(
            "SIP: {source}{} gets no answer for a while: too many failed logins",
            username.map_or(String::new(), |user| format!(" (user {user})"))
        );
    }
}

/// Whether the user name `header` claims is blocked for failed logins (then the request gets
/// no answer).
fn blocked_user(shared: &Shared, header: &str) -> bool {
    let blocked = claimed_username(header)
        .is_some_and(|user| shared.guard.username_blocked(&user, Instant::now()));
    if blocked {
        shared.metrics.rejected("rate_limited");
    }
    blocked
}

/// The user and host of a URI.
fn user_and_host(uri: &rsipstack::sip::Uri) -> (Option<String>, String) {
    let user = uri.auth.as_ref().map(|auth| auth.user.clone());
    (user, uri.host_with_port.host.to_string())
}

async fn register(shared: &Shared, tx: &mut Transaction) {
    let Ok(to) = tx.original.to_header().and_then(|to| to.typed()) else {
        return reply(shared, tx, 400, vec![]).await;
    };
    let Some(from) = source(tx) else {
        return reply(shared, tx, 400, vec![]).await;
    };
    let (aor_user, realm) = user_and_host(&to.uri);
    let accounts = shared.runtime.accounts();
    // An unknown realm is challenged as a known one is, and refused as a wrong password is:
    // the answers tell a prober nothing.
    let account_id = accounts.account_for_realm(&realm).map(str::to_string);
    let account = account_id.as_deref().and_then(|id| accounts.get(id));
    let realm = account.and_then(|a| a.realm.clone()).unwrap_or(realm);
    let now = SystemTime::now();
    let Some(header) = tx
        .original
        .authorization_header()
        .map(|h| h.value().to_string())
    else {
        return challenge(shared, tx, &realm, from.ip(), false, now).await;
    };
    if blocked_user(shared, &header) {
        return;
    }
    let password = |user: &str| {
        account?
            .device_by_username(user)
            .map(|d| d.document.sip.password.clone())
    };
    let (verdict, username) = verify_credentials(
        shared,
        &tx.original,
        &header,
        &realm,
        from.ip(),
        password,
        now,
    );
    let refuse = |tx: &Transaction, reason| {
        refused(shared, tx, reason);
        shared.metrics.registration("refused");
        login_failed(shared, from.ip(), username.as_deref());
    };
    match verdict {
        Verdict::Valid => {}
        Verdict::Stale => return challenge(shared, tx, &realm, from.ip(), true, now).await,
        Verdict::Replayed => {
            shared.metrics.rejected("replayed_credentials");
            return challenge(shared, tx, &realm, from.ip(), true, now).await;
        }
        Verdict::Wrong => {
            refuse(tx, "bad_credentials");
            return reply(shared, tx, 403, vec![]).await;
        }
    }
    let (Some(account), Some(account_id), Some(username)) = (account, account_id, username.clone())
    else {
        refuse(tx, "bad_credentials");
        return reply(shared, tx, 403, vec![]).await;
    };
    if aor_user.as_deref() != Some(username.as_str()) {
        // A device registers its own address of record, and no other.
        refuse(tx, "bad_credentials");
        return reply(shared, tx, 403, vec![]).await;
    }
    let device = account
        .device_by_username(&username)
        .expect("a verified user is a device");
    let default_expires = match tx.original.expires_header() {
        None => MAX_EXPIRES,
        Some(header) => match header.value().trim().parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => return reply(shared, tx, 400, vec![]).await,
        },
    };
    let Ok(contacts) = tx.original.typed_contact_headers() else {
        return reply(shared, tx, 400, vec![]).await;
    };
    let instant = Instant::now();
    let contacts_of = |bindings: &[crate::registrar::Binding]| {
        let mut uris: Vec<String> = bindings.iter().map(|b| b.contact.clone()).collect();
        uris.sort();
        uris
    };
    let before = contacts_of(&shared.registrar.lookup(&account_id, &device.id, instant));
    let bindings = if contacts.iter().any(|c| c.to_string() == "*") {
        // RFC 3261 10.3: `*` comes alone, with Expires 0.
        if contacts.len() != 1 || !default_expires.is_zero() {
            return reply(shared, tx, 400, vec![]).await;
        }
        shared.registrar.unregister_all(&account_id, &device.id);
        Vec::new()
    } else {
        let wanted: Vec<Wanted> = contacts
            .iter()
            .map(|contact| Wanted {
                uri: contact.uri.to_string(),
                address: SocketAddr::try_from(contact.uri.host_with_port.clone()).ok(),
                expires: contact
                    .expires()
                    .map_or(default_expires, |secs| Duration::from_secs(u64::from(secs))),
            })
            .collect();
        let origin = origin(tx, from);
        match shared
            .registrar
            .register_all(&account_id, &device.id, &wanted, &origin, instant)
        {
            Ok(bindings) => bindings,
            Err(e) => {
                tracing::info!("SIP: REGISTER of {username} in {account_id} refused: {e}");
                shared.metrics.rejected("max_contacts");
                shared.metrics.registration("refused");
                return reply(shared, tx, 403, vec![]).await;
            }
        }
    };
    shared.metrics.registration(if bindings.is_empty() {
        "unregistered"
    } else {
        "ok"
    });
    let after = contacts_of(&bindings);
    if after != before {
        let now_at = if after.is_empty() {
            "no contact".to_string()
        } else {
            after.join(", ")
        };
        tracing::info!(
            "SIP: device {} of account {account_id} ({username}, from {from}) now at {now_at}",
            device.id
        );
    }
    let mut headers: Vec<Header> = bindings
        .iter()
        .map(|b| {
            Contact::new(format!(
                "<{}>;expires={}",
                b.contact,
                b.expires_in(instant).as_secs()
            ))
            .into()
        })
        .collect();
    if let Some(first) = bindings.first() {
        headers.push(Expires::from(first.expires_in(instant).as_secs() as u32).into());
    }
    reply(shared, tx, 200, headers).await;
}

async fn invite(shared: Arc<Shared>, mut tx: Transaction) {
    let started = Instant::now();
    let Some((details, caller)) = authorise(&shared, &mut tx).await else {
        return;
    };
    if let Err(refusal) = shared.admit() {
        let reason = match refusal {
            Refusal::ShuttingDown => "shutting_down",
            Refusal::TooManyCalls => "max_calls",
            Refusal::TooManyPerSecond => "max_cps",
        };
        refused(&shared, &tx, reason);
        let retry = vec![RetryAfter::new("5").into()];
        return reply(&shared, &mut tx, 503, retry).await;
    }
    let admitted = Admitted(Arc::clone(&shared));
    let accounts = shared.runtime.accounts();
    let has_callflow = accounts
        .get(&details.account_id)
        .is_some_and(|account| account.callflows.find(&details.request).is_some());
    if !has_callflow {
        refused(&shared, &tx, "unknown_number");
        return reply(&shared, &mut tx, 404, vec![]).await;
    }
    crate::call::run(admitted, tx, details, caller, started).await;
}

/// A 407 challenging an INVITE from `to` in `realm`.
async fn proxy_challenge(
    shared: &Shared,
    tx: &mut Transaction,
    realm: &str,
    to: IpAddr,
    stale: bool,
    now: SystemTime,
) {
    let challenge = shared.nonces.challenge(realm, to, stale, now);
    let headers = vec![ProxyAuthenticate::new(challenge).into()];
    reply(shared, tx, 407, headers).await;
}

/// Who the INVITE is from and what it is for; `None` once it was refused (the refusal is sent).
async fn authorise(shared: &Shared, tx: &mut Transaction) -> Option<(CallDetails, Caller)> {
    let request = &tx.original;
    let (dialed, _) = user_and_host(&request.uri);
    let Some(dialed) = dialed.filter(|d| !d.is_empty()) else {
        refused(shared, tx, "unknown_number");
        reply(shared, tx, 404, vec![]).await;
        return None;
    };
    let Some(from_addr) = source(tx) else {
        reply(shared, tx, 400, vec![]).await;
        return None;
    };
    let Ok(from) = request.from_header().and_then(|h| h.typed()) else {
        reply(shared, tx, 400, vec![]).await;
        return None;
    };
    let from_edge = shared
        .settings
        .edge
        .as_ref()
        .is_some_and(|edge| edge.is_edge(from_addr.ip()));
    if from_edge {
        let invite = Invite::read(shared, request, dialed, &from);
        return match edge_caller(request) {
            EdgeCaller::Carrier { trunk } => carrier_call(shared, tx, &invite, &trunk).await,
            EdgeCaller::Device { username, realm } => {
                edge_device_call(shared, tx, &invite, &username, &realm).await
            }
        };
    }
    if let Some(trunk) = shared.settings.trunk_of(from_addr.ip()) {
        let invite = Invite::read(shared, request, dialed, &from);
        return carrier_call(shared, tx, &invite, trunk).await;
    }
    // Not a trunk: a device of the account whose realm the From names, with its credentials.
    // An unknown realm is challenged as a known one is, and refused as a wrong password is:
    // the answers tell a prober nothing.
    let (_, from_realm) = user_and_host(&from.uri);
    let accounts = shared.runtime.accounts();
    let account_id = accounts.account_for_realm(&from_realm).map(str::to_string);
    let account = account_id.as_deref().and_then(|id| accounts.get(id));
    let realm = account
        .and_then(|a| a.realm.clone())
        .unwrap_or_else(|| from_realm.clone());
    let now = SystemTime::now();
    let header = request.headers.iter().find_map(|h| match h {
        Header::ProxyAuthorization(value) => Some(value.value().to_string()),
        _ => None,
    });
    let Some(header) = header else {
        if account.is_none() {
            refused(shared, tx, "stranger");
        }
        proxy_challenge(shared, tx, &realm, from_addr.ip(), false, now).await;
        return None;
    };
    if blocked_user(shared, &header) {
        return None;
    }
    let password = |user: &str| {
        account?
            .device_by_username(user)
            .map(|d| d.document.sip.password.clone())
    };
    let (verdict, username) = verify_credentials(
        shared,
        request,
        &header,
        &realm,
        from_addr.ip(),
        password,
        now,
    );
    let wrong = |tx: &Transaction| {
        refused(shared, tx, "bad_credentials");
        login_failed(shared, from_addr.ip(), username.as_deref());
    };
    match verdict {
        Verdict::Valid => {}
        Verdict::Stale | Verdict::Replayed => {
            if verdict == Verdict::Replayed {
                refused(shared, tx, "replayed_credentials");
            }
            proxy_challenge(shared, tx, &realm, from_addr.ip(), true, now).await;
            return None;
        }
        Verdict::Wrong => {
            wrong(tx);
            reply(shared, tx, 403, vec![]).await;
            return None;
        }
    }
    let (Some(account), Some(account_id)) = (account, account_id) else {
        wrong(tx);
        reply(shared, tx, 403, vec![]).await;
        return None;
    };
    let device = account
        .device_by_username(&username.unwrap_or_default())
        .expect("a verified user is a device");
    let invite = Invite::read(shared, &tx.original, dialed, &from);
    Some(device_call(shared, &invite, account, &account_id, device))
}

/// What an INVITE says, read once for every kind of caller.
struct Invite<'a> {
    dialed: String,
    call_id: String,
    from: &'a rsipstack::sip::typed::From,
    from_user: Option<String>,
    from_realm: String,
    callee_name: Option<String>,
    to_user: Option<String>,
    to_realm: String,
    /// The headers modules may read.
    sip_headers: Vec<(String, String)>,
}

impl<'a> Invite<'a> {
    /// What `request` (to `dialed`, from `from`) says; read once its caller is known, so that a
    /// refused INVITE costs none of it.
    fn read(
        shared: &Shared,
        request: &rsipstack::sip::Request,
        dialed: String,
        from: &'a rsipstack::sip::typed::From,
    ) -> Self {
        let to = request.to_header().and_then(|h| h.typed()).ok();
        let (from_user, from_realm) = user_and_host(&from.uri);
        let (to_user, to_realm) = to
            .as_ref()
            .map(|to| user_and_host(&to.uri))
            .unwrap_or((None, String::new()));
        Invite {
            dialed,
            call_id: request
                .call_id_header()
                .map(|h| h.value().to_string())
                .unwrap_or_default(),
            from,
            from_user,
            from_realm,
            // Who the caller is calling, as the To names it (FreeSWITCH's Callee-ID of the A-leg).
            callee_name: to.and_then(|to| to.display_name),
            to_user,
            to_realm,
            sip_headers: shared
                .settings
                .module_headers
                .visible(request.headers.iter()),
        }
    }

    /// The call's details in `account_id`, for `request`, from `caller_id`, authorized as
    /// `(type, id)` (`resource` and the trunk, or `device` and its id).
    fn details(
        &self,
        account_id: String,
        request: String,
        caller_id: CallerId,
        (authorizing_type, authorizing_id): (&str, &str),
    ) -> CallDetails {
        CallDetails {
            call_id: self.call_id.clone(),
            account_id,
            request,
            caller_id_name: caller_id.name,
            caller_id_number: caller_id.number,
            callee_id_name: self.callee_name.clone(),
            callee_id_number: self.to_user.clone(),
            from_user: self.from_user.clone(),
            from_realm: Some(self.from_realm.clone()),
            to_user: self.to_user.clone(),
            to_realm: Some(self.to_realm.clone()),
            authorizing_type: Some(authorizing_type.to_string()),
            authorizing_id: Some(authorizing_id.to_string()),
            sip_headers: self.sip_headers.clone(),
        }
    }
}

/// A carrier's call (from trunk `trunk`) to the account whose callflows have the number;
/// `None` once refused.
async fn carrier_call(
    shared: &Shared,
    tx: &mut Transaction,
    invite: &Invite<'_>,
    trunk: &str,
) -> Option<(CallDetails, Caller)> {
    let accounts = shared.runtime.accounts();
    let Some(account_id) = accounts
        .account_for_number(&invite.dialed)
        .map(str::to_string)
    else {
        refused(shared, tx, "unknown_number");
        reply(shared, tx, 404, vec![]).await;
        return None;
    };
    let request = &tx.original;
    // A carrier asserts who calls in P-Asserted-Identity; else the From.
    let asserted = request
        .p_asserted_identity_header()
        .and_then(|h| rsipstack::sip::typed::From::parse(h.value()).ok());
    let identity = asserted.as_ref().unwrap_or(invite.from);
    let caller_id = CallerId {
        name: identity.display_name.clone(),
        number: user_and_host(&identity.uri).0,
    };
    let request = normalize_e164(&invite.dialed);
    let details = invite.details(account_id, request, caller_id, ("resource", trunk));
    let caller = Caller::Trunk {
        name: trunk.to_string(),
    };
    Some((details, caller))
}

/// A call from the device the edge authenticated (`username` in `realm`); `None` once
/// refused (a device this node does not know: not yet loaded, or removed).
async fn edge_device_call(
    shared: &Shared,
    tx: &mut Transaction,
    invite: &Invite<'_>,
    username: &str,
    realm: &str,
) -> Option<(CallDetails, Caller)> {
    let accounts = shared.runtime.accounts();
    let found = accounts.account_for_realm(realm).and_then(|account_id| {
        let account = accounts.get(account_id)?;
        Some((account_id, account, account.device_by_username(username)?))
    });
    let Some((account_id, account, device)) = found else {
        refused(shared, tx, "unknown_device");
        reply(shared, tx, 403, vec![]).await;
        return None;
    };
    Some(device_call(shared, invite, account, account_id, device))
}

/// The call of `device` of `account`, its caller id as KAZOO has it.
fn device_call(
    shared: &Shared,
    invite: &Invite<'_>,
    account: &Account,
    account_id: &str,
    device: &Device,
) -> (CallDetails, Caller) {
    let from_header = CallerId {
        name: invite.from.display_name.clone(),
        number: invite.from_user.clone(),
    };
    let caller_id = device_caller_id(
        account,
        device,
        shared
            .settings
            .device_from_sets_caller_id
            .then_some(from_header),
    );
    let details = invite.details(
        account_id.to_string(),
        invite.dialed.clone(),
        caller_id,
        ("device", &device.id),
    );
    (
        details,
        Caller::Device {
            id: device.id.clone(),
        },
    )
}
