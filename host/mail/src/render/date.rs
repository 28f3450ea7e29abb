//! The `date` filter's format, as ErlyDTL (and Django, and PHP) read it, in English: each
//! letter below stands for a part of the date, `\x` is a literal `x`, anything else is copied.
//!
//! | letter | | letter | |
//! |---|---|---|---|
//! | `d` | day, 01–31 | `j` | day, 1–31 |
//! | `D` | `Sat` | `l` | `Saturday` |
//! | `S` | `st`, `nd`, `rd`, `th` | `w` | weekday, 0 (Sunday)–6 |
//! | `z` | day of the year, 0–365 | `t` | days in the month |
//! | `m` | month, 01–12 | `n` | month, 1–12 |
//! | `M` | `Mar` | `F` | `March` |
//! | `b` | `mar` | `y` | `24` |
//! | `Y` | `2024` | `L` | `True` in a leap year |
//! | `H` | hour, 00–23 | `G` | hour, 0–23 |
//! | `h` | hour, 01–12 | `g` | hour, 1–12 |
//! | `i` | minutes, 00–59 | `s` | seconds, 00–59 |
//! | `A` | `AM`, `PM` | `a` | `a.m.`, `p.m.` |

use jiff::civil::{DateTime, Weekday};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// `date` written as `format` says.
pub fn format(date: DateTime, format: &str) -> String {
    let mut out = String::with_capacity(format.len() * 3);
    let mut chars = format.chars();
    let hour12 = match date.hour() % 12 {
        0 => 12,
        h => h,
    };
    let month = MONTHS[(date.month() - 1) as usize];
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            'd' => out.push_str(&format!("{:02}", date.day())),
            'j' => out.push_str(&date.day().to_string()),
            'D' => out.push_str(&weekday_name(date.weekday())[..3]),
            'l' => out.push_str(weekday_name(date.weekday())),
            'S' => out.push_str(match date.day() {
                1 | 21 | 31 => "st",
                2 | 22 => "nd",
                3 | 23 => "rd",
                _ => "th",
            }),
            'w' => out.push_str(&date.weekday().to_sunday_zero_offset().to_string()),
            'z' => out.push_str(&(date.day_of_year() - 1).to_string()),
            't' => out.push_str(&date.days_in_month().to_string()),
            'm' => out.push_str(&format!("{:02}", date.month())),
            'n' => out.push_str(&date.month().to_string()),
            'M' => out.push_str(&month[..3]),
            'b' => out.push_str(&month[..3].to_lowercase()),
            'F' => out.push_str(month),
            'y' => out.push_str(&format!("{:02}", date.year() % 100)),
            'Y' => out.push_str(&date.year().to_string()),
            'L' => out.push_str(if date.in_leap_year() { "True" } else { "False" }),
            'H' => out.push_str(&format!("{:02}", date.hour())),
            'G' => out.push_str(&date.hour().to_string()),
            'h' => out.push_str(&format!("{hour12:02}")),
            'g' => out.push_str(&hour12.to_string()),
            'i' => out.push_str(&format!("{:02}", date.minute())),
            's' => out.push_str(&format!("{:02}", date.second())),
            'A' => out.push_str(if date.hour() < 12 { "AM" } else { "PM" }),
            'a' => out.push_str(if date.hour() < 12 { "a.m." } else { "p.m." }),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teletypes_formats_render_as_erlydtl_does() {
        let date = jiff::civil::date(2024, 3, 30).at(5, 25, 0, 0);
        // The literal `\a\t` reaches the filter as `\a\t` (the template's `\\` unescaped).
        assert_eq!(
            format(date, "l, F j, Y \\a\\t H:i"),
            "Saturday, March 30, 2024 at 05:25"
        );
        assert_eq!(
            format(date, "l,F j,Y \\a\\t H:i"),
            "Saturday,March 30,2024 at 05:25"
        );
        let evening = jiff::civil::date(2024, 1, 2).at(21, 7, 9, 0);
        assert_eq!(
            format(evening, "D d/m/y h:i:s A a g G n M b S w z t L"),
            "Tue 02/01/24 09:07:09 PM p.m. 9 21 1 Jan jan nd 2 1 31 True"
        );
        assert_eq!(
            format(jiff::civil::date(2023, 6, 1).at(0, 0, 0, 0), "h g jS"),
            "12 12 1st"
        );
    }
}
