//! Wire and domain types: events, snapshots, client and server frames.

use bytestring::ByteString;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

pub use kavling_status::status_color;

/// A committed unit status change (what the DB layer publishes after commit).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UnitEvent {
    /// Project the unit belongs to.
    pub project_id: Uuid,
    /// Per-project sequence number: 1 for the first change, +1 per change.
    pub seq: i64,
    /// The unit that changed.
    pub unit_id: Uuid,
    /// Block number such as `A12`.
    pub block_number: String,
    /// New status.
    pub status: String,
    /// Status before the change.
    pub previous_status: String,
    /// Colour of the new status.
    pub color: String,
    /// Commit time.
    pub at: DateTime<Utc>,
    /// Booking details, shown only on staff channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<BookingInfo>,
}

/// A token revocation: connections of `user_id` that authenticated with a token version below
/// `min_version` lose their rights (a password change or a disable bumped the user's version).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    /// The user.
    pub user_id: Uuid,
    /// The lowest token version still valid.
    pub min_version: i64,
}

/// Who an authenticated connection is, decided once at connect: its user and the version of
/// the token it presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: Uuid,
    /// The token's version.
    pub token_version: i64,
}

/// A user's token version as the store has it, read by the revocation catch-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenChange {
    /// The user.
    pub user_id: Uuid,
    /// Their current token version.
    pub token_version: i64,
    /// When it last changed.
    pub changed_at: DateTime<Utc>,
}

/// Booking details attached to staff-channel unit frames.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BookingInfo {
    /// Booking id.
    pub booking_id: Uuid,
    /// Human booking code such as `BK-2026-001`.
    pub booking_code: String,
    /// Name of the marketing user who booked.
    pub marketing_name: String,
}

/// Current state of one unit, as in snapshots and `/availability`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UnitState {
    /// Unit id.
    pub unit_id: Uuid,
    /// Block number such as `A12`.
    pub block_number: String,
    /// Current status.
    pub status: String,
    /// Colour of the current status.
    pub color: String,
}

/// All units of a project at one seq.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Project id.
    pub project_id: Uuid,
    /// The seq the unit statuses correspond to.
    pub seq: i64,
    /// The version of the project's unit list these units are (see [`UnitsChanged`]).
    #[serde(default)]
    pub units_version: i64,
    /// Units in a stable order.
    pub units: Vec<UnitState>,
}

/// Where a project stands in the store: its seq (status changes) and the version of its unit
/// list (units added, removed or renamed, which emit no status event). The catch-up tick reads
/// both for every cached project in one query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProjectHead {
    /// Latest seq.
    pub seq: i64,
    /// Latest unit-list version.
    pub units_version: i64,
}

/// A committed change of a project's unit list (units added, removed or renamed), carried by the
/// bus like status changes so every instance's hub re-reads the list.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UnitsChanged {
    /// The project.
    pub project_id: Uuid,
    /// The unit-list version the change committed.
    pub units_version: i64,
}

/// A sequenced per-entity stream: a user's notifications or a conversation's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "camelCase")]
pub enum FeedKey {
    /// The notifications of one user (channel `user:<id>`).
    User(Uuid),
    /// The messages of one conversation (channel `conversation:<id>`).
    Conversation(Uuid),
}

impl FeedKey {
    /// The channel name: `user:<id>` or `conversation:<id>`.
    pub fn channel(&self) -> String {
        match self {
            FeedKey::User(id) => format!("user:{id}"),
            FeedKey::Conversation(id) => format!("conversation:{id}"),
        }
    }

    /// The frame `type` of its items: "notification" or "message".
    pub fn frame_type(&self) -> &'static str {
        match self {
            FeedKey::User(_) => "notification",
            FeedKey::Conversation(_) => "message",
        }
    }
}

/// Parses `user:<uuid>` / `conversation:<uuid>` (hyphenated uuid, any case); None for anything else.
pub fn parse_feed_channel(channel: &str) -> Option<FeedKey> {
    let (make, id): (fn(Uuid) -> FeedKey, &str) = if let Some(id) = channel.strip_prefix("user:") {
        (FeedKey::User, id)
    } else if let Some(id) = channel.strip_prefix("conversation:") {
        (FeedKey::Conversation, id)
    } else {
        return None;
    };
    if id.len() != 36 {
        return None;
    }
    Uuid::parse_str(id).ok().map(make)
}

/// One committed item of a feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// The feed it belongs to.
    pub key: FeedKey,
    /// Per feed, from 1, gap-free.
    pub seq: i64,
    /// Commit time, for the commit-to-send latency metric.
    pub at: DateTime<Utc>,
    /// The frame's fields other than "type", "channel" and "seq", already in wire form
    /// (camelCase; a notification's id, kind, title, body, data, createdAt, readAt;
    /// a message's id, senderId, text, createdAt). The hub writes them after those three.
    pub body: serde_json::Map<String, serde_json::Value>,
}

impl FeedEvent {
    /// The frame of this item on its channel, serialized once (keys "type", "channel" and
    /// "seq" in `body` are ignored: the hub writes those).
    pub fn to_frame(&self) -> ByteString {
        let frame = TaggedFrame {
            ty: self.key.frame_type(),
            channel: &self.key.channel(),
            seq: Some(self.seq),
            body: BodyFields(&self.body),
        };
        frame_string(&frame)
    }
}

/// A staff note about a booking after a payment change (`booking` frame on
/// `project:<id>:staff`). Live only: no seq and no replay; the lossless paths are the
/// buyer's notifications (`user:<id>`) and the REST lists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingNote {
    /// The project whose staff channel carries it.
    pub project_id: Uuid,
    /// The frame's fields other than "type" and "channel", in wire form: bookingId,
    /// bookingCode, status, paymentStatus, invoice (an object or null), at.
    pub body: serde_json::Map<String, serde_json::Value>,
}

impl BookingNote {
    /// The `booking` frame on the project's staff channel, serialized once.
    pub fn to_frame(&self) -> ByteString {
        let frame = TaggedFrame {
            ty: "booking",
            channel: &format!("project:{}:staff", self.project_id),
            seq: None,
            body: BodyFields(&self.body),
        };
        frame_string(&frame)
    }
}

/// A frame whose fields after `type`, `channel` and `seq` come from a JSON map.
#[derive(Serialize)]
struct TaggedFrame<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(flatten)]
    body: BodyFields<'a>,
}

/// The body map without the keys the frame itself writes.
struct BodyFields<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl Serialize for BodyFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0 {
            if !matches!(k.as_str(), "type" | "channel" | "seq") {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

fn frame_string(frame: &impl Serialize) -> ByteString {
    match serde_json::to_string(frame) {
        Ok(s) => ByteString::from(s),
        Err(_) => ByteString::from_static(
            r#"{"type":"error","code":"internal","message":"serialization failed"}"#,
        ),
    }
}

/// A frame sent by the client.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ClientMessage {
    /// Subscribe to a channel, optionally resuming after `since`.
    Subscribe {
        /// `project:<id>` or `project:<id>:staff`.
        channel: String,
        /// Last seq the client has seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<i64>,
    },
    /// Stop receiving a channel.
    Unsubscribe {
        /// The channel as subscribed.
        channel: String,
    },
    /// Application-level ping; answered with `pong`.
    Ping,
}

/// A frame sent by the server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    /// All units of the project at `seq`.
    Snapshot {
        /// Channel this frame belongs to.
        channel: String,
        /// Seq of the snapshot.
        seq: i64,
        /// Unit states.
        units: Vec<UnitState>,
    },
    /// One unit status change.
    Unit {
        /// Channel this frame belongs to.
        channel: String,
        /// Seq of the change.
        seq: i64,
        /// Unit id.
        unit_id: Uuid,
        /// Block number.
        block_number: String,
        /// New status.
        status: String,
        /// Status before the change.
        previous_status: String,
        /// Colour of the new status.
        color: String,
        /// Commit time, RFC 3339 UTC with microseconds.
        #[serde(serialize_with = "ser_micros", deserialize_with = "de_time")]
        at: DateTime<Utc>,
        /// Booking details (staff channels only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        booking: Option<BookingInfo>,
    },
    /// One item of a `user:<id>` feed (fields of the notification after `seq`).
    Notification {
        /// Channel this frame belongs to.
        channel: String,
        /// Seq of the notification in the user's feed.
        seq: i64,
        /// id, kind, title, body, data, createdAt, readAt.
        #[serde(flatten)]
        fields: serde_json::Map<String, serde_json::Value>,
    },
    /// One item of a `conversation:<id>` feed.
    Message {
        /// Channel this frame belongs to.
        channel: String,
        /// Seq of the message in the conversation.
        seq: i64,
        /// id, senderId, text, createdAt.
        #[serde(flatten)]
        fields: serde_json::Map<String, serde_json::Value>,
    },
    /// A staff note about a booking after a payment change (live only).
    Booking {
        /// `project:<id>:staff`.
        channel: String,
        /// bookingId, bookingCode, status, paymentStatus, invoice, at.
        #[serde(flatten)]
        fields: serde_json::Map<String, serde_json::Value>,
    },
    /// The subscription is live from `seq` on.
    Subscribed {
        /// Channel subscribed.
        channel: String,
        /// Seq the client is at now.
        seq: i64,
        /// True when missed events were replayed instead of a snapshot.
        recovered: bool,
    },
    /// Answer to `ping`.
    Pong,
    /// A request failed; the connection stays open.
    Error {
        /// Stable snake_case code.
        code: String,
        /// Human-readable detail.
        message: String,
        /// Channel concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
}

impl ServerMessage {
    /// Builds an `error` frame.
    pub fn error(code: &str, message: impl Into<String>, channel: Option<&str>) -> Self {
        ServerMessage::Error {
            code: code.to_owned(),
            message: message.into(),
            channel: channel.map(str::to_owned),
        }
    }

    /// Builds the `unit` frame of an event for a channel; booking only when `staff`.
    pub fn unit(event: &UnitEvent, channel: &str, staff: bool) -> Self {
        ServerMessage::Unit {
            channel: channel.to_owned(),
            seq: event.seq,
            unit_id: event.unit_id,
            block_number: event.block_number.clone(),
            status: event.status.clone(),
            previous_status: event.previous_status.clone(),
            color: event.color.clone(),
            at: event.at,
            booking: if staff { event.booking.clone() } else { None },
        }
    }

    /// Serializes the frame once, ready to be shared by many clients.
    pub fn to_frame(&self) -> ByteString {
        // Serializing these plain structs cannot fail; fall back to an error frame anyway.
        match serde_json::to_string(self) {
            Ok(s) => ByteString::from(s),
            Err(_) => ByteString::from_static(
                r#"{"type":"error","code":"internal","message":"serialization failed"}"#,
            ),
        }
    }
}

/// One item of a connection's outbound queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A JSON text frame to send as is.
    Text(ByteString),
    /// Close the WebSocket with this code and reason, then stop.
    Close {
        /// WebSocket close code (1013 for a slow client, 1008 for policy).
        code: u16,
        /// Short reason.
        reason: String,
    },
}

fn ser_micros<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    DateTime::<Utc>::deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event() -> UnitEvent {
        UnitEvent {
            project_id: Uuid::from_u128(1),
            seq: 7,
            unit_id: Uuid::from_u128(2),
            block_number: "A12".to_owned(),
            status: "BOOKED".to_owned(),
            previous_status: "AVAILABLE".to_owned(),
            color: "#eab308".to_owned(),
            at: Utc
                .with_ymd_and_hms(2026, 11, 21, 8, 0, 0)
                .unwrap()
                .checked_add_signed(chrono::Duration::nanoseconds(123_456_789))
                .unwrap(),
            booking: Some(BookingInfo {
                booking_id: Uuid::from_u128(3),
                booking_code: "BK-2026-001".to_owned(),
                marketing_name: "Sari".to_owned(),
            }),
        }
    }

    #[test]
    fn unit_frames_match_the_contract() {
        let e = event();
        let public = ServerMessage::unit(&e, "project:p", false).to_frame();
        assert_eq!(
            &*public,
            r##"{"type":"unit","channel":"project:p","seq":7,"unitId":"00000000-0000-0000-0000-000000000002","blockNumber":"A12","status":"BOOKED","previousStatus":"AVAILABLE","color":"#eab308","at":"2026-11-21T08:00:00.123456Z"}"##
        );
        let staff = ServerMessage::unit(&e, "project:p:staff", true).to_frame();
        assert!(staff.ends_with(
            r#""at":"2026-11-21T08:00:00.123456Z","booking":{"bookingId":"00000000-0000-0000-0000-000000000003","bookingCode":"BK-2026-001","marketingName":"Sari"}}"#
        ));
        let back: ServerMessage = serde_json::from_str(&staff).unwrap();
        assert!(matches!(
            back,
            ServerMessage::Unit {
                booking: Some(_),
                seq: 7,
                ..
            }
        ));
    }

    #[test]
    fn other_frames_match_the_contract() {
        let snap = ServerMessage::Snapshot {
            channel: "project:p".to_owned(),
            seq: 3,
            units: vec![UnitState {
                unit_id: Uuid::from_u128(2),
                block_number: "A1".to_owned(),
                status: "SOLD".to_owned(),
                color: "#ef4444".to_owned(),
            }],
        };
        assert_eq!(
            &*snap.to_frame(),
            r##"{"type":"snapshot","channel":"project:p","seq":3,"units":[{"unitId":"00000000-0000-0000-0000-000000000002","blockNumber":"A1","status":"SOLD","color":"#ef4444"}]}"##
        );
        let subscribed = ServerMessage::Subscribed {
            channel: "project:p".to_owned(),
            seq: 3,
            recovered: true,
        };
        assert_eq!(
            &*subscribed.to_frame(),
            r#"{"type":"subscribed","channel":"project:p","seq":3,"recovered":true}"#
        );
        assert_eq!(&*ServerMessage::Pong.to_frame(), r#"{"type":"pong"}"#);
        assert_eq!(
            &*ServerMessage::error("not_found", "no", None).to_frame(),
            r#"{"type":"error","code":"not_found","message":"no"}"#
        );
        assert_eq!(
            &*ServerMessage::error("forbidden", "no", Some("project:p:staff")).to_frame(),
            r#"{"type":"error","code":"forbidden","message":"no","channel":"project:p:staff"}"#
        );
    }

    #[test]
    fn feed_and_booking_frames_write_type_channel_and_seq_first() {
        let mut body = serde_json::Map::new();
        body.insert("text".to_owned(), "halo".into());
        // Keys the hub writes itself are never taken from the body.
        body.insert("type".to_owned(), "spoof".into());
        body.insert("seq".to_owned(), 99.into());
        let event = FeedEvent {
            key: FeedKey::Conversation(Uuid::from_u128(1)),
            seq: 4,
            at: Utc::now(),
            body: body.clone(),
        };
        assert_eq!(
            &*event.to_frame(),
            r#"{"type":"message","channel":"conversation:00000000-0000-0000-0000-000000000001","seq":4,"text":"halo"}"#
        );
        let back: ServerMessage = serde_json::from_str(&event.to_frame()).unwrap();
        assert!(
            matches!(back, ServerMessage::Message { seq: 4, ref fields, .. } if fields["text"] == "halo")
        );
        let note = BookingNote {
            project_id: Uuid::from_u128(2),
            body,
        };
        assert_eq!(
            &*note.to_frame(),
            r#"{"type":"booking","channel":"project:00000000-0000-0000-0000-000000000002:staff","text":"halo"}"#
        );
        let back: ServerMessage = serde_json::from_str(&note.to_frame()).unwrap();
        assert!(matches!(back, ServerMessage::Booking { .. }));
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(
            r#""key":{"kind":"conversation","id":"00000000-0000-0000-0000-000000000001"}"#
        ));
        assert_eq!(serde_json::from_str::<FeedEvent>(&json).unwrap(), event);
    }

    #[test]
    fn client_messages_parse() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"op":"subscribe","channel":"project:x","since":5}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Subscribe {
                channel: "project:x".to_owned(),
                since: Some(5)
            }
        );
        let m: ClientMessage = serde_json::from_str(r#"{"op":"ping"}"#).unwrap();
        assert_eq!(m, ClientMessage::Ping);
        let m: ClientMessage =
            serde_json::from_str(r#"{"op":"unsubscribe","channel":"project:x"}"#).unwrap();
        assert!(matches!(m, ClientMessage::Unsubscribe { .. }));
    }

    #[test]
    fn events_round_trip_for_the_bus() {
        let e = event();
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""previousStatus":"AVAILABLE""#));
        assert_eq!(serde_json::from_str::<UnitEvent>(&json).unwrap(), e);
    }
}
