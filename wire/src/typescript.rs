//! Generates `src/generated/wire.ts` (and its copy `sdk/src/generated/wire.ts`) from this crate's types (ts-rs), and fails when the
//! committed file differs: `SAFESTREAM_WRITE_TS=1 cargo test -p wire` (or
//! `scripts/generate-types.sh`) rewrites it.

use std::path::PathBuf;

use ts_rs::{Config, TS};

use crate::{close, command, error, event, frame, push, records, rest};

fn decl<T: TS>(cfg: &Config, out: &mut String) {
    if let Some(docs) = T::docs() {
        out.push_str(&docs);
    }
    out.push_str("export ");
    out.push_str(&T::decl(cfg));
    out.push_str("\n\n");
}

fn consts(out: &mut String, name: &str, doc: &str, items: &[(&str, String)]) {
    out.push_str(&format!("/** {doc} */\nexport const {name} = {{\n"));
    for (k, v) in items {
        out.push_str(&format!("  {k}: {v},\n"));
    }
    out.push_str("} as const;\n\n");
}

fn q(s: &str) -> String {
    format!("'{s}'")
}

/// The whole generated file.
pub(crate) fn generate() -> String {
    let cfg = Config::default();
    let mut out = String::from(
        "// Generated from the `wire` crate by ts-rs: do not edit.\n\
         // Regenerate with scripts/generate-types.sh; `cargo test -p wire` fails when stale.\n\n",
    );
    consts(
        &mut out,
        "EVENTS",
        "Event names of the socket protocol.",
        &[
            ("auth", q(event::AUTH)),
            ("authRefresh", q(event::AUTH_REFRESH)),
            ("authRefreshed", q(event::AUTH_REFRESHED)),
            ("authRotate", q(event::AUTH_ROTATE)),
            ("ready", q(event::READY)),
            ("resync", q(event::RESYNC)),
            ("error", q(event::ERROR)),
            ("ping", q(event::PING)),
            ("pong", q(event::PONG)),
            ("heartbeat", q(event::HEARTBEAT)),
            ("commandNew", q(event::COMMAND_NEW)),
            ("commandSent", q(event::COMMAND_SENT)),
            ("commandStatus", q(event::COMMAND_STATUS)),
            ("notificationNew", q(event::NOTIFICATION_NEW)),
            ("screentimeAlert", q(event::SCREENTIME_ALERT)),
            ("deviceStatus", q(event::DEVICE_STATUS)),
        ],
    );
    consts(
        &mut out,
        "CLOSE_CODES",
        "WebSocket close codes the relay uses.",
        &[
            ("normal", close::NORMAL.to_string()),
            ("goingAway", close::GOING_AWAY.to_string()),
            ("tooBig", close::TOO_BIG.to_string()),
            ("internal", close::INTERNAL.to_string()),
            ("protocol", close::PROTOCOL.to_string()),
            ("unauthorized", close::UNAUTHORIZED.to_string()),
            ("forbidden", close::FORBIDDEN.to_string()),
            ("timeout", close::TIMEOUT.to_string()),
            ("tooMany", close::TOO_MANY.to_string()),
            ("slowConsumer", close::SLOW_CONSUMER.to_string()),
        ],
    );
    let codes = [
        error::BAD_REQUEST,
        error::UNAUTHORIZED,
        error::FORBIDDEN,
        error::NOT_FOUND,
        error::METHOD_NOT_ALLOWED,
        error::CONFLICT,
        error::EXPIRED,
        error::PAYLOAD_TOO_LARGE,
        error::UNSUPPORTED_MEDIA_TYPE,
        error::RATE_LIMITED,
        error::INTERNAL,
        error::UNAVAILABLE,
    ];
    out.push_str(&format!(
        "/** The `code` of a REST error body. */\nexport type ErrorCode = {};\n\n",
        codes.iter().map(|c| q(c)).collect::<Vec<_>>().join(" | ")
    ));
    let frame_codes = [
        error::frame::BAD_FRAME,
        error::frame::FORBIDDEN,
        error::frame::UNAUTHORIZED,
        error::frame::RATE_LIMITED,
    ];
    out.push_str(&format!(
        "/** The `code` of an `error` frame. */\nexport type FrameErrorCode = {};\n\n",
        frame_codes
            .iter()
            .map(|c| q(c))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    decl::<command::CommandType>(&cfg, &mut out);
    decl::<command::CommandStatus>(&cfg, &mut out);
    decl::<command::AckStatus>(&cfg, &mut out);
    decl::<command::CommandNew>(&cfg, &mut out);
    decl::<command::CommandSent>(&cfg, &mut out);
    decl::<command::CommandStatusData>(&cfg, &mut out);
    decl::<command::CommandView>(&cfg, &mut out);
    decl::<records::ChildView>(&cfg, &mut out);
    decl::<records::DeviceView>(&cfg, &mut out);
    decl::<records::DeviceListItem>(&cfg, &mut out);
    decl::<records::AdminOverview>(&cfg, &mut out);
    decl::<records::AdminNode>(&cfg, &mut out);
    decl::<records::PendingCount>(&cfg, &mut out);
    decl::<records::NotificationType>(&cfg, &mut out);
    decl::<records::NotificationView>(&cfg, &mut out);
    decl::<frame::Auth>(&cfg, &mut out);
    decl::<frame::AuthRefresh>(&cfg, &mut out);
    decl::<frame::AuthRefreshed>(&cfg, &mut out);
    decl::<frame::AuthRotate>(&cfg, &mut out);
    decl::<frame::ParentReady>(&cfg, &mut out);
    decl::<frame::DeviceReady>(&cfg, &mut out);
    decl::<frame::Resync>(&cfg, &mut out);
    decl::<frame::ErrorData>(&cfg, &mut out);
    decl::<frame::Heartbeat>(&cfg, &mut out);
    decl::<frame::DeviceStatusReport>(&cfg, &mut out);
    decl::<frame::DeviceStatus>(&cfg, &mut out);
    decl::<frame::ScreentimeAlert>(&cfg, &mut out);
    decl::<error::ErrorBody>(&cfg, &mut out);
    decl::<error::ErrorDetail>(&cfg, &mut out);
    decl::<rest::CreateCommand>(&cfg, &mut out);
    decl::<rest::AckCommand>(&cfg, &mut out);
    decl::<rest::PutChild>(&cfg, &mut out);
    decl::<rest::CreateDevice>(&cfg, &mut out);
    decl::<rest::RotateTokenAccepted>(&cfg, &mut out);
    decl::<rest::CreateNotification>(&cfg, &mut out);
    decl::<rest::ScreenTimeReport>(&cfg, &mut out);
    decl::<rest::RestrictedAttempt>(&cfg, &mut out);
    decl::<rest::Publish>(&cfg, &mut out);
    decl::<rest::CreatePairing>(&cfg, &mut out);
    decl::<rest::ClaimPairing>(&cfg, &mut out);
    decl::<rest::ApprovePairing>(&cfg, &mut out);
    decl::<push::PushProvider>(&cfg, &mut out);
    decl::<push::ApnsEnvironment>(&cfg, &mut out);
    decl::<push::PushToken>(&cfg, &mut out);
    out.push_str(
        "/** Which data each server event carries. */\nexport interface ServerEvents {\n  \
         'command:new': CommandNew;\n  'command:sent': CommandSent;\n  'command:status': CommandStatusData;\n  \
         'notification:new': NotificationView;\n  'screentime:alert': ScreentimeAlert;\n  \
         'device:status': DeviceStatus;\n  ready: ParentReady | DeviceReady;\n  resync: Resync;\n  \
         error: ErrorData;\n  heartbeat: Heartbeat;\n  'auth:refreshed': AuthRefreshed;\n  'auth:rotate': AuthRotate;\n  pong: unknown;\n}\n",
    );
    out
}

/// Where the generated file is committed: the React Native module's and the parent SDK's.
const OUTPUTS: [&str; 2] = ["../src/generated/wire.ts", "../sdk/src/generated/wire.ts"];

#[test]
fn generated_typescript_is_fresh() {
    let text = generate();
    for out in OUTPUTS {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(out);
        if std::env::var_os("SAFESTREAM_WRITE_TS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} is stale: run scripts/generate-types.sh and commit it",
            path.display()
        );
    }
}
