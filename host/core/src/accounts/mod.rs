//! The data directory: `accounts/<account_id>/` holding `callflows/*.json`, `users/*.json`,
//! `devices/*.json` ([`devices`]), `vmboxes/*.json` ([`vmboxes`]) and an optional `account.json` (`{"realm": "...", "name":
//! "...", "timezone": "Europe/Paris"}`).
//!
//! A user document needs at least `email`; `first_name`, `last_name` and `endpoints` (a list
//! of `{"id", "address"}`) are optional. A user's endpoints are its document's and one per
//! device it owns (`owner_id`); a user with neither rings one default endpoint.
//!
//! Across accounts, each SIP realm belongs to one account, and each globally routable number
//! (E.164 after KAZOO's normalisation, [`numbers`]) to the callflows of one account: a second
//! claim is a load error for the second account, naming both, and the first keeps it.
//!
//! Loading never stops at one bad document: each problem is reported with its file and place
//! ([`report`]), and everything else loads. A directory that exists but cannot be read is a
//! problem too, never silently empty.

pub mod devices;
pub mod numbers;
pub mod report;
pub mod vmboxes;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use cfhost_store::{AccountData, Document};
use serde::Deserialize;

use crate::call::Endpoint;
pub use crate::callflow::e164::normalize_e164;
use crate::callflow::{
    AccountCallflows, Callflow, CallflowError, parse_callflow, validate_callflow,
};
use crate::directory::{AccountSettings, Directory, User};
use crate::registry::{ModuleSet, ModuleView};
pub use devices::{CallerId, CallerIds, Device, DeviceDocument};
pub use numbers::NumberIndex;
pub use report::{DataReport, DocumentError, RejectedDocument, Warning};
pub use vmboxes::VmBoxDocument;

/// One account's data.
#[derive(Default)]
pub struct Account {
    /// The SIP realm of the account, used for `From-Realm` / `To-Realm`.
    pub realm: Option<String>,
    /// Its display name.
    pub name: Option<String>,
    /// Its IANA time zone (KAZOO's account `timezone`), e.g. for time-of-day routing.
    pub timezone: Option<String>,
    pub callflows: AccountCallflows,
    users: HashMap<String, UserDocument>,
    devices: Vec<Device>,
    vmboxes: BTreeMap<String, VmBoxDocument>,
}

impl Account {
    /// Its devices, in file-name order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The device that authenticates as SIP user `username`.
    pub fn device_by_username(&self, username: &str) -> Option<&Device> {
        self.devices
            .iter()
            .find(|d| d.document.sip.username == username)
    }

    /// The devices owned by user `user_id`.
    pub fn devices_of<'a>(&'a self, user_id: &'a str) -> impl Iterator<Item = &'a Device> {
        self.devices
            .iter()
            .filter(move |d| d.document.owner_id.as_deref() == Some(user_id))
    }

    /// The user document `user_id`, if the account has it.
    pub fn user(&self, user_id: &str) -> Option<&UserDocument> {
        self.users.get(user_id)
    }

    /// How many users it has.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Its voicemail boxes, by id.
    pub fn vmboxes(&self) -> &BTreeMap<String, VmBoxDocument> {
        &self.vmboxes
    }
}

/// A user document.
#[derive(Debug, Clone, Deserialize)]
pub struct UserDocument {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<EndpointDocument>,
    /// Who the user's devices call as, when the device document does not say.
    #[serde(default)]
    pub caller_id: CallerIds,
}

/// An endpoint of a user document.
#[derive(Debug, Clone, Deserialize)]
pub struct EndpointDocument {
    pub id: String,
    pub address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AccountDocument {
    realm: Option<String>,
    name: Option<String>,
    timezone: Option<String>,
}

/// Every account in a data directory.
#[derive(Default, Clone)]
pub struct Accounts {
    accounts: BTreeMap<String, Arc<Account>>,
    /// Global numbers, by the account whose callflows claim them.
    numbers: NumberIndex,
    /// Account ids by SIP realm (lower case).
    realms: HashMap<String, String>,
    /// The documents each account's last load rejected.
    rejected: BTreeMap<String, Arc<[RejectedDocument]>>,
}

impl Accounts {
    /// The accounts of `data` (as a store read them), validating each callflow against the
    /// modules its account sees in `modules`. A rejected document is listed in the report and
    /// left out, unless `previous` (the accounts loaded before) has a version of it, which
    /// keeps serving.
    pub fn from_data(
        data: &[AccountData],
        modules: &ModuleSet,
        previous: &Accounts,
    ) -> (Accounts, DataReport) {
        let mut report = DataReport::default();
        let mut loaded = Accounts::default();
        for account_data in data {
            let id = &account_data.id;
            let mut found = DataReport::default();
            let account =
                load_account(account_data, modules.view(id), previous.get(id), &mut found);
            loaded.claim(id, &account, &account_data.place, &mut found);
            loaded.accounts.insert(id.clone(), Arc::new(account));
            loaded
                .rejected
                .insert(id.clone(), found.rejected(id).into());
            report.append(found);
        }
        (loaded, report)
    }

    /// The documents the last loads rejected, account by account.
    pub fn rejected(&self) -> impl Iterator<Item = &RejectedDocument> {
        self.rejected.values().flat_map(|rejected| rejected.iter())
    }

    /// Takes `account`'s realm and global numbers into the indexes; what another account has
    /// already is reported as an error for this one, and stays with the other.
    fn claim(&mut self, id: &str, account: &Account, dir: &Path, report: &mut DataReport) {
        if let Some(realm) = &account.realm {
            let key = realm.to_lowercase();
            match self.realms.get(&key) {
                Some(owner) if owner != id => report.errors.push(DocumentError::Taken {
                    file: dir.join("account.json"),
                    what: format!("realm `{realm}`"),
                    owner: owner.clone(),
                }),
                _ => {
                    self.realms.insert(key, id.to_string());
                }
            }
        }
        for callflow in account.callflows.iter() {
            for number in &callflow.numbers {
                if let Err(owner) = self.numbers.claim(number, id) {
                    report.errors.push(DocumentError::Taken {
                        file: callflow.source.clone(),
                        what: format!("number `{number}`"),
                        owner,
                    });
                }
            }
        }
    }

    /// The account whose callflows claim the global number `dialed` (normalised to E.164 by
    /// KAZOO's rules first): where a carrier's call for it goes.
    pub fn account_for_number(&self, dialed: &str) -> Option<&str> {
        self.numbers.owner(dialed)
    }

    /// The account whose SIP realm is `realm` (any case).
    pub fn account_for_realm(&self, realm: &str) -> Option<&str> {
        self.realms.get(&realm.to_lowercase()).map(String::as_str)
    }

    /// The account with this id.
    pub fn get(&self, account_id: &str) -> Option<&Account> {
        self.accounts.get(account_id).map(|account| &**account)
    }

    /// Every account, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Account)> {
        self.accounts
            .iter()
            .map(|(id, account)| (id.as_str(), &**account))
    }

    /// These accounts with `account_id` replaced by `data` (as a store read it; gone when
    /// `None`). The other accounts are shared, not copied.
    pub fn with_account(
        &self,
        account_id: &str,
        data: Option<&AccountData>,
        modules: ModuleView<'_>,
    ) -> (Accounts, DataReport) {
        let mut report = DataReport::default();
        let mut reloaded = Accounts {
            accounts: self.accounts.clone(),
            numbers: self.numbers.without(account_id),
            realms: self.realms.clone(),
            rejected: self.rejected.clone(),
        };
        reloaded.realms.retain(|_, owner| owner != account_id);
        match data {
            Some(data) => {
                let account = load_account(data, modules, self.get(account_id), &mut report);
                reloaded.claim(account_id, &account, &data.place, &mut report);
                reloaded
                    .accounts
                    .insert(account_id.to_string(), Arc::new(account));
                reloaded
                    .rejected
                    .insert(account_id.to_string(), report.rejected(account_id).into());
            }
            None => {
                reloaded.accounts.remove(account_id);
                reloaded.rejected.remove(account_id);
            }
        }
        (reloaded, report)
    }
}

/// Checks a callflow document `text` meant for `file` as loading would: its shape, then each
/// node's data against its module's schema. Returns the callflow and the warnings (unknown
/// modules).
pub fn check_callflow(
    file: &Path,
    text: &str,
    modules: ModuleView<'_>,
) -> Result<(Callflow, Vec<Warning>), CallflowError> {
    let callflow = parse_callflow(file, &stem(file).unwrap_or_default(), text)?;
    let unknown = validate_callflow(&callflow, modules)?;
    Ok((
        callflow,
        unknown.into_iter().map(Warning::UnknownModule).collect(),
    ))
}

impl Directory for Accounts {
    fn lookup_users(&self, account_id: &str, ids: &[String]) -> Vec<Option<User>> {
        let account = self.accounts.get(account_id);
        ids.iter()
            .map(|id| {
                let account = account?;
                let doc = account.users.get(id)?;
                Some(user_from_document(id, doc, account.devices_of(id)))
            })
            .collect()
    }

    fn account_settings(&self, account_id: &str) -> AccountSettings {
        let account = self.accounts.get(account_id);
        AccountSettings {
            id: account_id.to_string(),
            name: account.and_then(|a| a.name.clone()),
            realm: account.and_then(|a| a.realm.clone()),
            timezone: account.and_then(|a| a.timezone.clone()),
        }
    }
}

/// The user `id` as modules see it: its document's endpoints, then one endpoint per device it
/// owns (id: the device's, no address: the switch finds where the device registered).
fn user_from_document<'a>(
    id: &str,
    doc: &UserDocument,
    devices: impl Iterator<Item = &'a Device>,
) -> User {
    let mut endpoints: Vec<Endpoint> = doc
        .endpoints
        .iter()
        .map(|e| Endpoint {
            id: e.id.clone(),
            address: e.address.clone(),
        })
        .chain(devices.map(|device| Endpoint {
            id: device.id.clone(),
            address: None,
        }))
        .collect();
    if endpoints.is_empty() {
        endpoints.push(Endpoint {
            id: format!("{id}-default"),
            address: None,
        });
    }
    User {
        id: id.to_string(),
        email: doc.email.clone(),
        first_name: doc.first_name.clone(),
        last_name: doc.last_name.clone(),
        endpoints,
    }
}

/// Loads one account's documents. A document that is rejected is reported, and where
/// `previous` (the account as loaded before) has a version of it, that version is kept.
fn load_account(
    data: &AccountData,
    modules: ModuleView<'_>,
    previous: Option<&Account>,
    report: &mut DataReport,
) -> Account {
    let mut account = Account::default();
    report.errors.extend(
        data.problems
            .iter()
            .map(|problem| DocumentError::Unreadable {
                file: problem.place.clone(),
                source: problem.io_error(),
            }),
    );
    if let Some(settings) = &data.settings {
        match parse_json::<AccountDocument>(settings) {
            Ok(doc) => {
                account.realm = doc.realm;
                account.name = doc.name;
                if let Some(zone) = doc.timezone.as_deref()
                    && let Err(e) = jiff::tz::TimeZone::get(zone)
                {
                    report.warnings.push(Warning::BadTimezone {
                        file: settings.place.clone(),
                        timezone: zone.to_string(),
                        reason: e.to_string(),
                    });
                }
                account.timezone = doc.timezone;
            }
            Err(e) => report.errors.push(e),
        }
    }
    account.users =
        read_keyed(&data.users, |id| previous?.users.get(id).cloned(), report).collect();
    for document in &data.devices {
        match parse_json::<DeviceDocument>(document) {
            Ok(parsed) => {
                if let Some(owner_id) = &parsed.owner_id
                    && !account.users.contains_key(owner_id)
                {
                    report.warnings.push(Warning::UnknownOwner {
                        file: document.place.clone(),
                        owner_id: owner_id.clone(),
                    });
                }
                account.devices.push(Device {
                    id: document.id.clone(),
                    document: parsed,
                });
            }
            Err(e) => {
                let before = previous.and_then(|p| p.devices.iter().find(|d| d.id == document.id));
                if let Some(device) = before {
                    account.devices.push(device.clone());
                    report.kept_previous.insert(document.place.clone());
                }
                report.errors.push(e);
            }
        }
    }
    account.vmboxes = read_keyed(
        &data.vmboxes,
        |id| previous?.vmboxes.get(id).cloned(),
        report,
    )
    .collect();
    let mut callflows = Vec::new();
    for document in &data.callflows {
        match check_callflow(&document.place, &document.text, modules) {
            Ok((callflow, warnings)) => {
                report.warnings.extend(warnings);
                callflows.push(Arc::new(callflow));
            }
            Err(e) => {
                let before = previous.and_then(|p| p.callflows.from_source(&document.place));
                if let Some(callflow) = before {
                    callflows.push(callflow);
                    report.kept_previous.insert(document.place.clone());
                }
                report.errors.push(e.into());
            }
        }
    }
    account.callflows = AccountCallflows::from_shared(callflows);
    account
}

/// Each document read as a `T`, by id. One that does not read is reported, and its version in
/// `previous` (the account as loaded before), if there is one, is kept.
fn read_keyed<'a, T: serde::de::DeserializeOwned>(
    documents: &'a [Document],
    previous: impl Fn(&str) -> Option<T> + 'a,
    report: &'a mut DataReport,
) -> impl Iterator<Item = (String, T)> + 'a {
    documents
        .iter()
        .filter_map(move |document| match parse_json::<T>(document) {
            Ok(read) => Some((document.id.clone(), read)),
            Err(e) => {
                report.errors.push(e);
                let kept = previous(&document.id)?;
                report.kept_previous.insert(document.place.clone());
                Some((document.id.clone(), kept))
            }
        })
}

fn parse_json<T: serde::de::DeserializeOwned>(document: &Document) -> Result<T, DocumentError> {
    serde_json::from_str(&document.text).map_err(|e| DocumentError::Malformed {
        file: document.place.clone(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

fn stem(path: &Path) -> Option<String> {
    path.file_stem()?.to_str().map(str::to_string)
}
