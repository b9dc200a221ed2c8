//! Conversations: opened by a lead's unlock (in its transaction, once per lead), between the
//! buyer and the marketing user who unlocked it. Messages are numbered per conversation from 1
//! without gaps (the conversation row's `last_seq`, moved by a conditional update in the message's
//! transaction), idempotent by the sender's `clientMessageId` (a unique index decides under
//! concurrency), rate-limited per user in the database, and published on `conversation:<id>`
//! after commit. The catch-up tick of every instance re-reads the heads, so a lost publish is
//! delivered within about a second.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::db::begin_write;
use crate::domain::Role;
use crate::entities::{conversations, leads, messages, units, users};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::services::bookings::Viewer;
use crate::services::notifications::{NewNotification, NotificationKind, insert_notifications};
use kavling_realtime::{FeedEvent, FeedKey};

/// Longest message, in characters (Unicode scalar values, not bytes).
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest `clientMessageId`, in characters.
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 128;

/// `POST /conversations/{id}/messages` body.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewMessage {
    /// The message, 1 to 4,000 characters. Shown as text, never as HTML.
    #[schema(min_length = 1, max_length = 4000, pattern = r"^[^\x00]*$")]
    pub text: String,
    /// The sender's own id for this message (e.g. a UUID made when it was typed): sending it
    /// again returns the same message (200) instead of a second one.
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\x00]*$")]
    pub client_message_id: String,
}

/// A conversation as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    /// Id (channel `conversation:<id>`).
    pub id: Uuid,
    /// The unlocked lead that opened it.
    pub lead_id: Uuid,
    /// The lead's unit.
    pub unit_id: Option<Uuid>,
    /// The unit's block number.
    pub block_number: Option<String>,
    /// The buyer.
    pub buyer_id: Uuid,
    /// The buyer's name.
    pub buyer_name: String,
    /// The marketing user who unlocked the lead.
    pub marketing_id: Uuid,
    /// The marketing user's name.
    pub marketing_name: String,
    /// The seq of the newest message (0 before the first).
    pub last_seq: i64,
    /// When the newest message was sent.
    pub last_message_at: Option<DateTime<Utc>>,
    /// Opened (the unlock).
    pub created_at: DateTime<Utc>,
}

/// A message as the API shows it (the `message` frame carries id, senderId, text, createdAt).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// Id.
    pub id: Uuid,
    /// The conversation.
    pub conversation_id: Uuid,
    /// Per conversation, from 1, without gaps.
    pub seq: i64,
    /// Who sent it.
    pub sender_id: Uuid,
    /// The text, as sent.
    pub text: String,
    /// The sender's id for it.
    pub client_message_id: String,
    /// Sent.
    pub created_at: DateTime<Utc>,
}

impl From<messages::Model> for MessageView {
    fn from(m: messages::Model) -> Self {
        MessageView {
            id: m.id,
            conversation_id: m.conversation_id,
            seq: m.seq,
            sender_id: m.sender_id,
            text: m.text,
            client_message_id: m.client_message_id,
            created_at: m.created_at,
        }
    }
}

/// The feed item of a message on `conversation:<id>`: the frame's fields after type, channel, seq.
pub fn message_feed_event(m: &MessageView) -> FeedEvent {
    let mut body = serde_json::Map::new();
    body.insert("id".into(), m.id.to_string().into());
    body.insert("senderId".into(), m.sender_id.to_string().into());
    body.insert("text".into(), m.text.clone().into());
    body.insert(
        "createdAt".into(),
        serde_json::to_value(m.created_at).unwrap_or(serde_json::Value::Null),
    );
    FeedEvent {
        key: FeedKey::Conversation(m.conversation_id),
        seq: m.seq,
        at: m.created_at,
        body,
    }
}

/// Whether `POST .../messages` made the message or found it from an earlier request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Posted {
    /// A new message (201).
    Created(MessageView),
    /// The message this `clientMessageId` already made (200).
    Existing(MessageView),
}

/// The whitelist of `GET /conversations`.
pub const CONVERSATION_LIST: ListSpec<conversations::Column> = ListSpec {
    fields: &[
        ListField {
            name: "leadId",
            column: conversations::Column::LeadId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "buyerId",
            column: conversations::Column::BuyerId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "marketingId",
            column: conversations::Column::MarketingId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "lastSeq",
            column: conversations::Column::LastSeq,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "lastMessageAt",
            column: conversations::Column::LastMessageAt,
            kind: FieldKind::Timestamp,
        },
        ListField {
            name: "createdAt",
            column: conversations::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(conversations::Column::CreatedAt, true)],
    tiebreak: conversations::Column::Id,
};

/// The whitelist of `GET /conversations/{id}/messages` (oldest first unless sorted).
pub const MESSAGE_LIST: ListSpec<messages::Column> = ListSpec {
    fields: &[
        ListField {
            name: "seq",
            column: messages::Column::Seq,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "senderId",
            column: messages::Column::SenderId,
            kind: FieldKind::Uuid,
        },
        ListField {
            name: "createdAt",
            column: messages::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(messages::Column::Seq, false)],
    tiebreak: messages::Column::Id,
};

/// Longest message preview in a notification, in characters.
const PREVIEW_CHARS: usize = 140;

/// The start of a message for its notification (whole characters, an ellipsis if cut).
fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Checks a message's fields: lengths in characters, no NUL (PostgreSQL text cannot hold it).
fn validate_message(input: &NewMessage) -> CoreResult<()> {
    let mut errors = Vec::new();
    for (field, value, max) in [
        ("text", &input.text, MAX_TEXT_CHARS),
        (
            "clientMessageId",
            &input.client_message_id,
            MAX_CLIENT_MESSAGE_ID_CHARS,
        ),
    ] {
        let n = value.chars().count();
        if n == 0 || n > max {
            errors.push(FieldError::new(
                field,
                "length",
                format!("must be 1 to {max} characters"),
            ));
        } else if value.contains('\0') {
            errors.push(FieldError::new(
                field,
                "invalid_character",
                "must not contain NUL",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CoreError::Validation(errors))
    }
}

/// Opens the conversation of an unlocked lead in the unlock's transaction; a lead that has one
/// already keeps it (the unique `lead_id` makes a repeat a no-op).
pub async fn open_for_lead<C: ConnectionTrait>(
    conn: &C,
    lead: &leads::Model,
    marketing_id: Uuid,
    now: DateTime<Utc>,
) -> CoreResult<()> {
    conversations::Entity::insert(conversations::ActiveModel {
        id: Set(Uuid::now_v7()),
        lead_id: Set(lead.id),
        buyer_id: Set(lead.buyer_id),
        marketing_id: Set(marketing_id),
        last_seq: Set(0),
        last_message_at: Set(None),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(conversations::Column::LeadId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// The conversation of each given lead that has one (one query).
pub async fn ids_by_lead<C: ConnectionTrait>(
    conn: &C,
    lead_ids: Vec<Uuid>,
) -> CoreResult<HashMap<Uuid, Uuid>> {
    if lead_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Uuid)> = conversations::Entity::find()
        .select_only()
        .column(conversations::Column::LeadId)
        .column(conversations::Column::Id)
        .filter(conversations::Column::LeadId.is_in(lead_ids))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The two parties of a conversation, or None if it does not exist (for the channel's check).
pub async fn parties(
    db: &DatabaseConnection,
    id: Uuid,
) -> Result<Option<Vec<Uuid>>, sea_orm::DbErr> {
    Ok(conversations::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(|c| vec![c.buyer_id, c.marketing_id]))
}

/// Messages of a conversation after `after`, oldest first, at most `limit` (channel replays).
pub async fn feed_after(
    db: &DatabaseConnection,
    id: Uuid,
    after: i64,
    limit: u64,
) -> Result<Vec<FeedEvent>, sea_orm::DbErr> {
    let rows = messages::Entity::find()
        .filter(messages::Column::ConversationId.eq(id))
        .filter(messages::Column::Seq.gt(after))
        .order_by_asc(messages::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|m| message_feed_event(&MessageView::from(m)))
        .collect())
}

/// The newest seq of each given conversation, in one query (absent: no such conversation).
pub async fn feed_heads(
    db: &DatabaseConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, i64>, sea_orm::DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, i64)> = conversations::Entity::find()
        .select_only()
        .column(conversations::Column::Id)
        .column(conversations::Column::LastSeq)
        .filter(conversations::Column::Id.is_in(ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

impl Services {
    /// `GET /conversations`: the caller's own (as buyer or marketing user); an admin sees all.
    pub async fn list_conversations(
        &self,
        viewer: Viewer,
        query: &str,
    ) -> CoreResult<Page<ConversationView>> {
        let q = ListQuery::parse(query, &CONVERSATION_LIST)?;
        let mut select = conversations::Entity::find();
        if viewer.role != Role::Admin {
            select = select.filter(
                Condition::any()
                    .add(conversations::Column::BuyerId.eq(viewer.user_id))
                    .add(conversations::Column::MarketingId.eq(viewer.user_id)),
            );
        }
        let page = q.fetch(select, &self.db).await?;
        let user_ids: Vec<Uuid> = page
            .data
            .iter()
            .flat_map(|c| [c.buyer_id, c.marketing_id])
            .collect();
        let lead_ids: Vec<Uuid> = page.data.iter().map(|c| c.lead_id).collect();
        let names: HashMap<Uuid, String> = if user_ids.is_empty() {
            HashMap::new()
        } else {
            users::Entity::find()
                .filter(users::Column::Id.is_in(user_ids))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|u| (u.id, u.full_name))
                .collect()
        };
        let lead_units: HashMap<Uuid, Uuid> = if lead_ids.is_empty() {
            HashMap::new()
        } else {
            leads::Entity::find()
                .filter(leads::Column::Id.is_in(lead_ids))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|l| (l.id, l.unit_id))
                .collect()
        };
        let blocks: HashMap<Uuid, String> = if lead_units.is_empty() {
            HashMap::new()
        } else {
            units::Entity::find()
                .filter(units::Column::Id.is_in(lead_units.values().copied()))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|u| (u.id, u.block_number))
                .collect()
        };
        Ok(page.map(|c| {
            let unit_id = lead_units.get(&c.lead_id).copied();
            ConversationView {
                id: c.id,
                lead_id: c.lead_id,
                unit_id,
                block_number: unit_id.and_then(|u| blocks.get(&u).cloned()),
                buyer_id: c.buyer_id,
                buyer_name: names.get(&c.buyer_id).cloned().unwrap_or_default(),
                marketing_id: c.marketing_id,
                marketing_name: names.get(&c.marketing_id).cloned().unwrap_or_default(),
                last_seq: c.last_seq,
                last_message_at: c.last_message_at,
                created_at: c.created_at,
            }
        }))
    }

    /// The conversation if the viewer may read it (a party, or an admin when `admin_reads`):
    /// 404 if it does not exist, 403 `forbidden` otherwise.
    async fn party_conversation(
        &self,
        viewer: Viewer,
        id: Uuid,
        admin_reads: bool,
    ) -> CoreResult<conversations::Model> {
        let c = conversations::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("conversation"))?;
        let party = c.buyer_id == viewer.user_id || c.marketing_id == viewer.user_id;
        if party || (admin_reads && viewer.role == Role::Admin) {
            Ok(c)
        } else {
            Err(CoreError::forbidden(
                "forbidden",
                "only the conversation's two parties may do this",
            ))
        }
    }

    /// `GET /conversations/{id}/messages` (its parties; an admin may read).
    pub async fn list_messages(
        &self,
        viewer: Viewer,
        id: Uuid,
        query: &str,
    ) -> CoreResult<Page<MessageView>> {
        let q = ListQuery::parse(query, &MESSAGE_LIST)?;
        self.party_conversation(viewer, id, true).await?;
        let select = messages::Entity::find().filter(messages::Column::ConversationId.eq(id));
        Ok(q.fetch(select, &self.db).await?.map(MessageView::from))
    }

    /// `POST /conversations/{id}/messages` (its two parties only): the next message, or the one
    /// this sender's `clientMessageId` already made. One transaction: the rate limit, the seq,
    /// the row (and the other party's notification); published after commit.
    pub async fn post_message(
        &self,
        sender: Viewer,
        id: Uuid,
        input: NewMessage,
    ) -> CoreResult<Posted> {
        validate_message(&input)?;
        let conversation = self.party_conversation(sender, id, false).await?;
        if let Some(existing) = self
            .message_by_client_id(id, sender.user_id, &input.client_message_id)
            .await?
        {
            return Ok(Posted::Existing(existing));
        }
        let now = self.clock.now();
        let txn = begin_write(&self.db).await?;
        self.chat_rate
            .spend(&txn, &format!("chat:{}", sender.user_id), now)
            .await?;
        // Takes the conversation's row until commit: its messages are numbered one at a time.
        let bumped = conversations::Entity::update_many()
            .col_expr(
                conversations::Column::LastSeq,
                Expr::col(conversations::Column::LastSeq).add(1),
            )
            .col_expr(conversations::Column::LastMessageAt, Expr::value(Some(now)))
            .filter(conversations::Column::Id.eq(id))
            .exec_with_returning(&txn)
            .await?;
        let seq = bumped
            .first()
            .map(|c| c.last_seq)
            .ok_or(CoreError::NotFound("conversation"))?;
        let message = messages::Model {
            id: Uuid::now_v7(),
            conversation_id: id,
            seq,
            sender_id: sender.user_id,
            text: input.text,
            client_message_id: input.client_message_id,
            created_at: now,
        };
        let inserted = messages::Entity::insert(messages::ActiveModel::from(message.clone()))
            .exec_without_returning(&txn)
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if CoreError::is_unique_violation(&e) => {
                // A concurrent request with the same clientMessageId committed first: this one
                // rolls back (its seq and rate-limit token with it) and answers with that message.
                txn.rollback().await?;
                return match self
                    .message_by_client_id(id, sender.user_id, &message.client_message_id)
                    .await?
                {
                    Some(m) => Ok(Posted::Existing(m)),
                    None => Err(CoreError::Internal(
                        "a message vanished after a unique violation".into(),
                    )),
                };
            }
            Err(e) => return Err(e.into()),
        }
        let view = MessageView::from(message);
        let mut feed = vec![message_feed_event(&view)];
        feed.extend(
            self.notify_other_party(&txn, &conversation, &view, now)
                .await?,
        );
        txn.commit().await?;
        self.publish_feed(&feed).await;
        Ok(Posted::Created(view))
    }

    /// The other party's `message` notification, in the message's transaction; returns the feed
    /// items to publish after commit.
    async fn notify_other_party<C: ConnectionTrait>(
        &self,
        conn: &C,
        conversation: &conversations::Model,
        message: &MessageView,
        now: DateTime<Utc>,
    ) -> CoreResult<Vec<FeedEvent>> {
        let recipient = if message.sender_id == conversation.buyer_id {
            conversation.marketing_id
        } else {
            conversation.buyer_id
        };
        let sender_name = users::Entity::find_by_id(message.sender_id)
            .one(conn)
            .await?
            .map(|u| u.full_name)
            .unwrap_or_default();
        let item = NewNotification {
            user_id: recipient,
            kind: NotificationKind::Message,
            title: format!("Pesan baru dari {sender_name}"),
            body: preview(&message.text),
            data: serde_json::json!({
                "conversationId": conversation.id,
                "messageId": message.id,
                "seq": message.seq,
                "senderId": message.sender_id,
            }),
        };
        insert_notifications(conn, &[item], now).await
    }

    /// The message a sender's `clientMessageId` made in a conversation, if any.
    async fn message_by_client_id(
        &self,
        id: Uuid,
        sender_id: Uuid,
        client_message_id: &str,
    ) -> CoreResult<Option<MessageView>> {
        Ok(messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(id))
            .filter(messages::Column::SenderId.eq(sender_id))
            .filter(messages::Column::ClientMessageId.eq(client_message_id))
            .one(&self.db)
            .await?
            .map(MessageView::from))
    }
}
