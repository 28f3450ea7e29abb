//! The API the console stands on, as a process: users, devices and voicemail boxes validated,
//! account-scoped, stored and live; the listings; what a token opens; the operator's status;
//! SIP calls per account; and email templates previewed unsaved.

use serde_json::{Value, json};

use crate::serve::{ACME, OPERATOR, Server, request, send, start};

const USERS: &str = "/v1/accounts/acme-missed/users";
const DEVICES: &str = "/v1/accounts/acme-missed/devices";
const BOXES: &str = "/v1/accounts/acme-missed/vmboxes";

/// PUTs `body` at `path` with the account's token: the status and the `error`, if any.
fn put(server: &Server, path: &str, body: Value) -> (u16, Value) {
    request(server, "PUT", path, Some(ACME), Some(&body))
}

/// The ids `path` lists.
fn listed(server: &Server, path: &str) -> Vec<String> {
    let (status, list) = request(server, "GET", path, Some(ACME), None);
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts a 400 whose error contains `says` (and names `field`, when given).
fn refused(answer: (u16, Value), says: &str, field: Option<&str>) {
    let (status, body) = answer;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(says), "`{error}` should say `{says}`");
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{body}");
    }
}

#[test]
fn users_devices_and_boxes_are_validated_scoped_stored_and_live() {
    let server = start();
    // A user, then a device it owns and a box.
    let user = json!({"first_name": "Ann", "last_name": "Lee", "email": "ann@example.com"});
    assert_eq!(put(&server, &format!("{USERS}/ann"), user.clone()).0, 200);
    assert_eq!(
        request(&server, "GET", &format!("{USERS}/ann"), Some(ACME), None),
        (200, user)
    );
    let device = json!({"name": "desk", "owner_id": "ann",
                        "sip": {"username": "2001", "password": "pw"}});
    assert_eq!(put(&server, &format!("{DEVICES}/desk"), device).0, 200);
    let vmbox = json!({"name": "Ann's box", "mailbox": "3001", "owner_id": "ann"});
    assert_eq!(put(&server, &format!("{BOXES}/ann-box"), vmbox).0, 200);
    assert!(listed(&server, USERS).contains(&"ann".to_string()));
    assert_eq!(listed(&server, DEVICES), ["desk"]);
    assert_eq!(listed(&server, BOXES), ["ann-box"]);
    assert!(
        server
            .data()
            .join("accounts/acme-missed/vmboxes/ann-box.json")
            .is_file()
    );
    // Live: the account counts them at once.
    let (_, accounts) = request(&server, "GET", "/v1/accounts", Some(ACME), None);
    assert_eq!(accounts.as_array().unwrap().len(), 1, "{accounts}");
    assert_eq!(accounts[0]["id"], "acme-missed");
    assert_eq!(
        (&accounts[0]["devices"], &accounts[0]["vmboxes"]),
        (&json!(1), &json!(1))
    );

    // What loading would refuse, and what does not fit the account.
    refused(
        put(&server, &format!("{USERS}/bad"), json!({"email": 5})),
        "not a valid user",
        None,
    );
    refused(
        put(&server, &format!("{USERS}/bad"), json!({"email": "nobody"})),
        "no email address",
        Some("email"),
    );
    refused(
        put(&server, &format!("{USERS}/bad"), json!(["a list"])),
        "must be a JSON object",
        None,
    );
    refused(
        put(&server, &format!("{USERS}/bad"), json!({"id": "other"})),
        "not the path's",
        Some("id"),
    );
    let device = |owner: &str, username: &str, password: &str| json!({"owner_id": owner, "sip": {"username": username, "password": password}});
    refused(
        put(
            &server,
            &format!("{DEVICES}/d2"),
            device("ghost", "2002", "pw"),
        ),
        "no user `ghost`",
        Some("owner_id"),
    );
    refused(
        put(
            &server,
            &format!("{DEVICES}/d2"),
            device("ann", "2001", "pw"),
        ),
        "already device `desk`'s",
        Some("sip.username"),
    );
    refused(
        put(&server, &format!("{DEVICES}/d2"), device("ann", "2002", "")),
        "must not be empty",
        Some("sip"),
    );
    refused(
        put(&server, &format!("{DEVICES}/d2"), json!({"name": "no sip"})),
        "missing field `sip`",
        None,
    );
    // The same device may keep its own username.
    assert_eq!(
        put(
            &server,
            &format!("{DEVICES}/desk"),
            device("ann", "2001", "new")
        )
        .0,
        200
    );
    refused(
        put(
            &server,
            &format!("{BOXES}/b2"),
            json!({"name": "x", "mailbox": "30a1"}),
        ),
        "1 to 16 digits",
        None,
    );
    refused(
        put(
            &server,
            &format!("{BOXES}/b2"),
            json!({"name": "x", "mailbox": "3001"}),
        ),
        "already box `ann-box`'s",
        Some("mailbox"),
    );
    // Hostile bodies and ids.
    let (status, _) = send(
        server.port,
        "PUT",
        &format!("{USERS}/bad"),
        Some(ACME),
        "application/json",
        b"{\"email\": \"a@b\"",
    );
    assert_eq!(status, 400);
    let (status, _) = send(
        server.port,
        "PUT",
        &format!("{USERS}/bad"),
        Some(ACME),
        "text/html",
        b"<b>hi</b>",
    );
    assert_eq!(status, 415);
    for id in ["..%2F..%2Fetc", "a.b", &"x".repeat(200)] {
        let (status, body) = request(&server, "GET", &format!("{USERS}/{id}"), Some(ACME), None);
        assert!(status == 400 || status == 404, "{id}: {status} {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert!(!listed(&server, USERS).contains(&"bad".to_string()));

    // Another account's token sees and writes nothing here, and no token nothing at all.
    let other = "/v1/accounts/acme-notify/users";
    assert_eq!(request(&server, "GET", other, Some(ACME), None).0, 403);
    let write = json!({"email": "x@example.com"});
    assert_eq!(
        request(
            &server,
            "PUT",
            &format!("{other}/x"),
            Some(ACME),
            Some(&write)
        )
        .0,
        403
    );
    assert_eq!(request(&server, "GET", USERS, None, None).0, 401);
    assert_eq!(
        request(
            &server,
            "GET",
            "/v1/accounts/nobody/users",
            Some(OPERATOR),
            None
        )
        .0,
        404
    );
    assert_eq!(request(&server, "GET", other, Some(OPERATOR), None).0, 200);

    // A file another tool wrote that is not JSON is listed as such, with why.
    std::fs::write(
        server
            .data()
            .join("accounts/acme-missed/users/zz-broken.json"),
        "{\"email\": ",
    )
    .unwrap();
    let (_, users) = request(&server, "GET", USERS, Some(ACME), None);
    let broken = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "zz-broken")
        .expect("listed");
    assert_eq!(broken["document"], Value::Null);
    assert!(
        broken["error"].as_str().unwrap().contains("EOF"),
        "{broken}"
    );

    // Removed, then gone.
    let desk = format!("{DEVICES}/desk");
    assert_eq!(request(&server, "DELETE", &desk, Some(ACME), None).0, 204);
    assert_eq!(request(&server, "DELETE", &desk, Some(ACME), None).0, 404);
    assert_eq!(listed(&server, DEVICES), Vec::<String>::new());
}

#[test]
fn tokens_say_what_they_open_and_the_operator_sees_the_node() {
    let server = start();
    assert_eq!(
        request(&server, "GET", "/v1/session", Some(ACME), None),
        (200, json!({"role": "account", "account_id": "acme-missed"}))
    );
    assert_eq!(
        request(&server, "GET", "/v1/session", Some(OPERATOR), None),
        (200, json!({"role": "operator"}))
    );
    assert_eq!(
        request(&server, "GET", "/v1/session", Some("nope"), None).0,
        401
    );
    let (_, accounts) = request(&server, "GET", "/v1/accounts", Some(OPERATOR), None);
    let ids: Vec<&str> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-missed", "acme-notify"]);

    // A call through the API counts; the status says so, to the operator only.
    let call = json!({"to": "+15554441111", "behaviour": {"bridge": "answer"}});
    let calls = "/v1/accounts/acme-missed/calls";
    assert_eq!(
        request(&server, "POST", calls, Some(ACME), Some(&call)).0,
        200
    );
    let (status, node) = request(&server, "GET", "/v1/status", Some(OPERATOR), None);
    assert_eq!(status, 200, "{node}");
    assert_eq!(node["accounts"], 2);
    assert_eq!(node["calls"]["finished"], 1);
    assert_eq!(node["calls"]["in_progress"], 0);
    assert_eq!(node["outbox"], Value::Null);
    let modules: Vec<&str> = node["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(modules.contains(&"missed_call_alert"), "{node}");
    assert_eq!(node["quarantined"], json!([]));
    assert_eq!(
        request(&server, "GET", "/v1/status", Some(ACME), None).0,
        403
    );

    // SIP calls: the operator's lists, and each account's own.
    for path in ["/v1/sip/calls", "/v1/sip/calls/active"] {
        assert_eq!(
            request(&server, "GET", path, Some(OPERATOR), None),
            (200, json!([]))
        );
        assert_eq!(request(&server, "GET", path, Some(ACME), None).0, 403);
    }
    for path in ["sip/calls", "sip/calls/active"] {
        let own = format!("/v1/accounts/acme-missed/{path}");
        assert_eq!(
            request(&server, "GET", &own, Some(ACME), None),
            (200, json!([]))
        );
        let other = format!("/v1/accounts/acme-notify/{path}");
        assert_eq!(request(&server, "GET", &other, Some(ACME), None).0, 403);
    }
}

#[test]
fn a_template_is_previewed_unsaved_and_listed_once_saved() {
    let server = start();
    let templates = "/v1/accounts/acme-missed/notifications";
    let (status, list) = request(&server, "GET", templates, Some(ACME), None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list,
        json!([{"id": "missed_call", "subject": "Missed call from {{caller_id.name_number}}",
                "default": true}])
    );
    // A draft renders without being stored.
    let preview = format!("{templates}/welcome/preview");
    let draft = json!({"template": {"subject": "Hi {{ caller_id.name_number }}",
                                    "text": "Called {{ callee_id.name_number }}",
                                    "to": {"type": "specified",
                                           "email_addresses": ["ops@example.com"]}},
                       "call": {"caller_id_name": "Jane", "caller_id_number": "+15550001234"}});
    let (status, email) = request(&server, "POST", &preview, Some(ACME), Some(&draft));
    assert_eq!(status, 200, "{email}");
    assert!(
        email["subject"].as_str().unwrap().starts_with("Hi Jane"),
        "{email}"
    );
    assert_eq!(email["to"], json!(["ops@example.com"]));
    assert_eq!(
        request(
            &server,
            "GET",
            &format!("{templates}/welcome"),
            Some(ACME),
            None
        )
        .0,
        404
    );
    // A draft that does not compile says where; one from a sender the operator does not allow
    // is refused as a PUT would be.
    let broken = json!({"template": {"subject": "x", "text": "{% if %}"}});
    let (status, body) = request(&server, "POST", &preview, Some(ACME), Some(&broken));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not compile"),
        "{body}"
    );
    assert_eq!(body["part"], "text", "{body}");
    let not_a_template = json!({"template": "text"});
    let (status, _) = request(&server, "POST", &preview, Some(ACME), Some(&not_a_template));
    assert_eq!(status, 400);
    // Saved, it is listed with its subject.
    let saved = draft["template"].clone();
    assert_eq!(
        request(
            &server,
            "PUT",
            &format!("{templates}/welcome"),
            Some(ACME),
            Some(&saved)
        )
        .0,
        200
    );
    let (_, list) = request(&server, "GET", templates, Some(ACME), None);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["missed_call", "welcome"]);
    assert_eq!(list[1]["subject"], "Hi {{ caller_id.name_number }}");
    assert_eq!(list[1]["default"], false);
    assert_eq!(
        request(
            &server,
            "GET",
            "/v1/accounts/acme-notify/notifications",
            Some(ACME),
            None
        )
        .0,
        403
    );
}
