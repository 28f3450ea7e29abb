//! `time_of_day`: routes a call to the child `open` during the account's opening hours and to
//! `closed` outside them (each falling back to `_`). Not from KAZOO: cfhost's own example of a
//! module an operator drops in, built with the SDK alone.
//!
//! ```json
//! { "timezone": "Europe/Paris",
//!   "hours": [ { "days": ["mon", "tue", "wed", "thu", "fri"], "open": "09:00", "close": "17:30" },
//!              { "days": ["sat"], "open": "22:00", "close": "02:00" } ] }
//! ```
//!
//! The time zone is the node's `timezone`, else the account's (`account.json`), else UTC. A
//! span whose `close` is not after its `open` runs past midnight into the next day (and
//! `open` = `close` is the whole day). It needs the `clock` capability (without it, the clock
//! reads 1970) and uses `log` to say why it chose a child.

use cfhost_sdk::{Call, CallflowModule, Capability, Description, Outcome, log};
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use schemars::JsonSchema;
use serde::Deserialize;

struct TimeOfDay;

/// The node's data.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Data {
    /// IANA time zone, e.g. `America/New_York`; default: the account's, else UTC.
    timezone: Option<String>,
    /// When the account is open; at any other time it is closed.
    hours: Vec<Span>,
}

/// Opening hours on some days of the week.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Span {
    /// The days it opens on.
    #[schemars(length(min = 1))]
    days: Vec<Day>,
    /// Opening time, `HH:MM`.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    open: String,
    /// Closing time, `HH:MM`; not after `open` means the next day.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    close: String,
}

#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn of(weekday: Weekday) -> Day {
        match weekday {
            Weekday::Monday => Day::Mon,
            Weekday::Tuesday => Day::Tue,
            Weekday::Wednesday => Day::Wed,
            Weekday::Thursday => Day::Thu,
            Weekday::Friday => Day::Fri,
            Weekday::Saturday => Day::Sat,
            Weekday::Sunday => Day::Sun,
        }
    }
}

impl Span {
    /// Whether `now` falls in this span.
    fn contains(&self, now: &Zoned) -> Result<bool, String> {
        let (open, close) = (parse_time(&self.open)?, parse_time(&self.close)?);
        let time = now.time();
        let today = self.days.contains(&Day::of(now.weekday()));
        let yesterday = self.days.contains(&Day::of(now.weekday().previous()));
        Ok(if open < close {
            today && open <= time && time < close
        } else {
            // Past midnight: from `open` today, or until `close` after yesterday's opening.
            (today && time >= open) || (yesterday && time < close)
        })
    }
}

fn parse_time(text: &str) -> Result<Time, String> {
    let (hour, minute) = text
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i8>().ok()?, m.parse::<i8>().ok()?)))
        .ok_or_else(|| format!("`{text}` is not HH:MM"))?;
    Time::new(hour, minute, 0, 0).map_err(|e| format!("`{text}`: {e}"))
}

/// The time zone the node names, else the account's, else UTC.
fn time_zone(data: &Data) -> Result<(String, TimeZone), String> {
    let name = data
        .timezone
        .clone()
        .or_else(|| cfhost_sdk::account::settings().timezone)
        .unwrap_or_else(|| "UTC".to_string());
    let zone = TimeZone::get(&name).map_err(|e| format!("time zone `{name}`: {e}"))?;
    Ok((name, zone))
}

impl CallflowModule for TimeOfDay {
    fn describe() -> Description {
        cfhost_sdk::description_for::<Data>(
            "time_of_day",
            env!("CARGO_PKG_VERSION"),
            "Routes to `open` during the account's opening hours, else to `closed`",
            vec![Capability::Clock, Capability::Log],
        )
    }

    fn handle(_call: Call, data: &str) -> Result<Outcome, String> {
        let data: Data = cfhost_sdk::parse_data(data)?;
        let (zone_name, zone) = time_zone(&data)?;
        let now = Timestamp::try_from(cfhost_sdk::clock::now())
            .map_err(|e| format!("the clock: {e}"))?
            .to_zoned(zone);
        let mut open = false;
        for span in &data.hours {
            open |= span.contains(&now)?;
        }
        let child = if open { "open" } else { "closed" };
        log::info(&format!(
            "{} {} in {zone_name}: {child}",
            now.strftime("%a"),
            now.strftime("%H:%M")
        ));
        Ok(cfhost_sdk::continue_to([child]))
    }
}

cfhost_sdk::export_module!(TimeOfDay);

#[cfg(test)]
mod tests {
    use super::*;
    use cfhost_sdk::testing::ScriptedCall;
    use serde_json::json;
    use std::time::{Duration, SystemTime};

    /// 2023-11-14T22:13:20Z: a Tuesday, 23:13 in Paris, 17:13 in New York.
    const TUESDAY_22_13_UTC: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn office_hours() -> serde_json::Value {
        json!({"hours": [{"days": ["mon", "tue", "wed", "thu", "fri"], "open": "09:00", "close": "17:30"}]})
    }

    #[test]
    fn open_in_the_accounts_time_zone_during_its_hours() {
        let call = ScriptedCall::new()
            .timezone("America/New_York")
            .now(at(TUESDAY_22_13_UTC));
        let outcome = call.handle::<TimeOfDay>(&office_hours());
        assert_eq!(outcome, Ok(cfhost_sdk::continue_to(["open"])));
        assert_eq!(call.logs()[0].1, "Tue 17:13 in America/New_York: open");
    }

    #[test]
    fn closed_outside_them_and_the_nodes_zone_wins() {
        let mut data = office_hours();
        data["timezone"] = json!("Europe/Paris");
        let call = ScriptedCall::new()
            .timezone("America/New_York")
            .now(at(TUESDAY_22_13_UTC));
        assert_eq!(
            call.handle::<TimeOfDay>(&data),
            Ok(cfhost_sdk::continue_to(["closed"]))
        );
        assert_eq!(call.logs()[0].1, "Tue 23:13 in Europe/Paris: closed");
    }

    #[test]
    fn utc_without_any_time_zone_and_spans_run_past_midnight() {
        let late = json!({"hours": [{"days": ["tue"], "open": "22:00", "close": "02:00"}]});
        let tuesday_night = ScriptedCall::new().now(at(TUESDAY_22_13_UTC));
        assert_eq!(
            tuesday_night.handle::<TimeOfDay>(&late),
            Ok(cfhost_sdk::continue_to(["open"]))
        );
        let wednesday_1am = ScriptedCall::new().now(at(TUESDAY_22_13_UTC + 3 * 3600));
        assert_eq!(
            wednesday_1am.handle::<TimeOfDay>(&late),
            Ok(cfhost_sdk::continue_to(["open"]))
        );
        let wednesday_3am = ScriptedCall::new().now(at(TUESDAY_22_13_UTC + 5 * 3600));
        assert_eq!(
            wednesday_3am.handle::<TimeOfDay>(&late),
            Ok(cfhost_sdk::continue_to(["closed"]))
        );
        let all_day = json!({"hours": [{"days": ["tue"], "open": "00:00", "close": "00:00"}]});
        assert_eq!(
            tuesday_night.handle::<TimeOfDay>(&all_day),
            Ok(cfhost_sdk::continue_to(["open"]))
        );
    }

    #[test]
    fn an_unknown_time_zone_is_an_error() {
        let data = json!({"timezone": "Mars/Olympus_Mons", "hours": []});
        let error = ScriptedCall::new().handle::<TimeOfDay>(&data).unwrap_err();
        assert!(error.contains("time zone `Mars/Olympus_Mons`"), "{error}");
    }

    #[test]
    fn the_schema_describes_the_data() {
        let schema: serde_json::Value =
            serde_json::from_str(&TimeOfDay::describe().data_schema).unwrap();
        assert_eq!(schema["required"], json!(["hours"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        let span = &schema["$defs"]["Span"];
        assert_eq!(
            span["properties"]["open"]["pattern"],
            r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
        );
        assert_eq!(
            schema["$defs"]["Day"]["enum"],
            json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
        );
    }
}
