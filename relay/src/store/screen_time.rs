//! Screen time: a child's minutes for the day, and the day's alert (once) to its guardians.

use serde_json::json;
use wire::event;

use super::db::args;
use super::notifications::{insert_notification, NewNotification};
use super::{Store, StoreError, StoreResult};
use crate::model::{day_in, Millis};

/// Result of a screen-time report.
#[derive(Debug, Clone)]
pub struct ScreenTimeOutcome {
    /// The child's calendar day the report counts for.
    pub day: String,
    /// Minutes used today, as reported.
    pub minutes_used: i64,
    /// The child's daily limit.
    pub limit: Option<i64>,
    /// Whether this report raised the day's alert.
    pub alert: bool,
}

impl Store {
    /// Records today's minutes for a child; raises the day's alert once.
    pub async fn record_screen_time(
        &self,
        child_id: &str,
        minutes: i64,
        now: Millis,
    ) -> StoreResult<ScreenTimeOutcome> {
        let child_id = child_id.to_string();
        self.write(move |w| {
            let (name, limit, tz): (String, Option<i64>, String) = w
                .conn
                .opt(
                    "SELECT name, daily_limit_minutes, timezone FROM children WHERE id = ?1",
                    args![child_id],
                    |r| Ok((r.text(0)?, r.opt_int(1)?, r.text(2)?)),
                )?
                .ok_or_else(|| StoreError::NotFound("no such child".into()))?;
            let day = day_in(&tz, now);
            w.conn.exec(
                "INSERT INTO screen_time (child_id, day, minutes_used, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (child_id, day) DO UPDATE SET minutes_used = excluded.minutes_used, updated_at = excluded.updated_at",
                args![child_id, day, minutes, now],
            )?;
            let mut alert = false;
            if let Some(l) = limit {
                if minutes >= l {
                    // Conditional: the first report over the limit, on whichever node, wins.
                    alert = w.conn.exec(
                        "UPDATE screen_time SET alerted_at = ?3 WHERE child_id = ?1 AND day = ?2 AND alerted_at IS NULL",
                        args![child_id, day, now],
                    )? == 1;
                }
            }
            if alert {
                let limit = limit.unwrap_or(0);
                let guardians = w.guardians(&child_id)?;
                let data = json!({"childId": child_id, "childName": name, "minutesUsed": minutes, "limit": limit});
                Self::log_event_for_all(w, &guardians, event::SCREENTIME_ALERT, &data, now)?;
                w.webhook(wire::webhook::SCREENTIME_ALERT, now, || data.clone());
                for g in guardians.iter() {
                    let n = NewNotification {
                        user_id: g.clone(),
                        kind: "SCREEN_TIME_LIMIT".into(),
                        title: format!("{name} reached today's screen-time limit"),
                        message: format!("{name} has used {minutes} of {limit} minutes today."),
                        metadata: json!({"childId": child_id, "day": day, "minutesUsed": minutes, "limit": limit}),
                    };
                    insert_notification(w, n, now)?;
                }
            }
            Ok(ScreenTimeOutcome {
                day,
                minutes_used: minutes,
                limit,
                alert,
            })
        })
        .await
    }
}
