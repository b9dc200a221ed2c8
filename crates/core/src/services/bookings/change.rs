//! Changing a booking: PATCH transitions, cancellation, and hold expiry (on demand and by the
//! sweeper).

use super::*;

impl Services {
    /// `PATCH /bookings/{id}` (ADMIN, or the verified MARKETING user who booked it).
    pub async fn patch_booking(
        &self,
        actor: &ActorRef,
        viewer: Viewer,
        id: Uuid,
        patch: BookingPatch,
    ) -> CoreResult<BookingView> {
        self.change_visible_booking(actor, viewer, id, patch, false)
            .await
    }

    /// `DELETE /bookings/{id}`: cancels and soft-deletes in one transaction. The row stays (code,
    /// audit, ledger, the unit's AVAILABLE event, notifications as for any cancellation), but
    /// the API answers 404 for it and everything under it from then on, a second DELETE too.
    /// A COMPLETED or already CANCELLED booking answers 409 `invalid_transition`, as before.
    pub async fn cancel_booking(
        &self,
        actor: &ActorRef,
        viewer: Viewer,
        id: Uuid,
    ) -> CoreResult<BookingView> {
        let cancel = BookingPatch {
            status: Some(BookingStatus::Cancelled),
            ..BookingPatch::default()
        };
        self.change_visible_booking(actor, viewer, id, cancel, true)
            .await
    }

    /// PATCH and DELETE: one change of a booking the viewer may see, optionally soft-deleting it.
    async fn change_visible_booking(
        &self,
        actor: &ActorRef,
        viewer: Viewer,
        id: Uuid,
        patch: BookingPatch,
        delete: bool,
    ) -> CoreResult<BookingView> {
        let mut errors = Vec::new();
        check_notes(&patch.notes, &mut errors);
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let txn = begin_write(&self.db).await?;
        let b = self.visible_booking(&txn, viewer, id).await?;
        // Hold expiry is exact: paying or activating a lapsed hold cancels it instead, whether or
        // not the sweeper got there first (then this changes nothing and still answers 409).
        let pays = patch.status == Some(BookingStatus::Active)
            || patch.payment_status == Some(PaymentStatus::Paid);
        if pays && let Some(expired) = self.expire_if_due(&txn, &b).await? {
            txn.commit().await?;
            self.publish_committed(&expired).await;
            return Err(hold_expired());
        }
        let changes = Changes {
            status: patch.status,
            payment_status: patch.payment_status,
            payment_date: patch.payment_date,
            payment_method: patch.payment_method,
            notes: patch.notes,
            delete,
        };
        let (updated, events, feed) = self
            .change_booking(&txn, actor, &b, changes, Cause::Patch)
            .await?
            .ok_or_else(|| {
                CoreError::conflict(
                    "invalid_transition",
                    "the booking changed meanwhile (it may have expired); reload it",
                )
            })?;
        txn.commit().await?;
        self.publish(&events).await;
        self.publish_feed(&feed).await;
        self.embed(viewer, vec![updated])
            .await?
            .pop()
            .ok_or(CoreError::NotFound("booking"))
    }

    /// Applies a change to a booking as a conditional update on its current status (and, for
    /// expiry, on `expires_at` having passed); the unit follows. None when the booking changed
    /// meanwhile, so the caller's transaction must not commit a half-done change (nothing was written).
    pub(crate) async fn change_booking<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &ActorRef,
        b: &bookings::Model,
        changes: Changes,
        cause: Cause,
    ) -> CoreResult<Option<BookingChanged>> {
        let current = parse_status(&b.status)?;
        let unit_move = match changes.status {
            Some(to) => booking_transition(current, to)?,
            None => None,
        };
        let now = self.clock.now();
        let mut update = bookings::Entity::update_many()
            .col_expr(bookings::Column::UpdatedAt, Expr::value(now))
            .filter(bookings::Column::Id.eq(b.id))
            .filter(bookings::Column::Status.eq(current.as_str()));
        if let Cause::Expired = cause {
            update = update.filter(bookings::Column::ExpiresAt.lt(now));
        }
        if let Some(to) = changes.status {
            update = update.col_expr(bookings::Column::Status, Expr::value(to.as_str()));
            if to == BookingStatus::Cancelled {
                update = update.col_expr(bookings::Column::CancelledAt, Expr::value(now));
            }
        }
        if let Some(ps) = changes.payment_status {
            update = update.col_expr(bookings::Column::PaymentStatus, Expr::value(ps.as_str()));
        }
        let paid_at = match (changes.payment_status, changes.payment_date) {
            (_, Some(d)) => Some(crate::clock::to_micros(d)),
            (Some(PaymentStatus::Paid), None) => Some(now),
            _ => None,
        };
        if let Some(d) = paid_at {
            update = update.col_expr(bookings::Column::PaymentDate, Expr::value(d));
        }
        if let Some(m) = changes.payment_method {
            update = update.col_expr(bookings::Column::PaymentMethod, Expr::value(m.as_str()));
        }
        if let Some(n) = &changes.notes {
            update = update.col_expr(bookings::Column::Notes, Expr::value(n.clone()));
        }
        if changes.delete {
            update = update.col_expr(bookings::Column::DeletedAt, Expr::value(now));
        }
        let Some(updated) = update.exec_with_returning(conn).await?.into_iter().next() else {
            return Ok(None);
        };

        if changes.status == Some(BookingStatus::Cancelled) {
            // A cancelled booking owes nothing more: its open invoices are voided with it.
            crate::services::payments::void_open_invoices(conn, self.clock.as_ref(), actor, b.id)
                .await?;
        }
        let action = match (cause, changes.status) {
            (Cause::Expired, _) => "booking.expired",
            (Cause::Payment, Some(BookingStatus::Active)) => "booking.paid",
            (Cause::Payment, Some(BookingStatus::Completed)) => "booking.completed",
            (_, Some(BookingStatus::Cancelled)) if changes.delete => "booking.deleted",
            (_, Some(BookingStatus::Cancelled)) => "booking.cancelled",
            (_, Some(_)) => "booking.status_changed",
            (_, None) => "booking.updated",
        };
        audit::record(
            conn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action,
                entity_type: "booking",
                entity_id: b.id,
                old_values: Some(audit_values(b)),
                new_values: Some(audit_values(&updated)),
            },
        )
        .await?;

        let mut events = Vec::new();
        if let Some((from, to)) = unit_move {
            if set_unit_status(conn, now, b.unit_id, from, to).await? {
                let unit = units::Entity::find_by_id(b.unit_id)
                    .one(conn)
                    .await?
                    .ok_or(CoreError::NotFound("unit"))?;
                let marketing_name = users::Entity::find_by_id(b.marketing_id)
                    .one(conn)
                    .await?
                    .map(|u| u.full_name)
                    .unwrap_or_default();
                events.push(
                    record_unit_change(
                        conn,
                        self.clock.as_ref(),
                        actor,
                        UnitChange {
                            project_id: unit.project_id,
                            unit_id: unit.id,
                            block_number: unit.block_number,
                            from,
                            to,
                            booking: Some(BookingInfo {
                                booking_id: b.id,
                                booking_code: b.booking_code.clone(),
                                marketing_name,
                            }),
                        },
                    )
                    .await?,
                );
            } else if to == UnitStatus::Sold {
                // Completing a sale must move the unit; anything else is a conflict to resolve by hand.
                return Err(CoreError::conflict(
                    "status_conflict",
                    "the unit is not BOOKED, so the sale cannot complete",
                ));
            } else {
                // A cancellation always succeeds; a unit moved by hand keeps its status.
                tracing::warn!(booking = %b.id, unit = %b.unit_id,
                    "cancelled a booking whose unit was not BOOKED; the unit keeps its status");
            }
        }
        // The booking's people hear of a new status or payment status (not of a note).
        let feed = if updated.status != b.status || updated.payment_status != b.payment_status {
            notify_booking(conn, &updated, Some(&b.status), now).await?
        } else {
            Vec::new()
        };
        Ok(Some((updated, events, feed)))
    }

    /// Cancels `b` when it is a lapsed hold (conditionally, like the sweeper): None when it is not
    /// one; Some(events) when it is, with no events if someone else (the sweeper) cancelled it
    /// first, which its `booking.expired` audit row tells even after the fact.
    pub(crate) async fn expire_if_due<C: ConnectionTrait>(
        &self,
        conn: &C,
        b: &bookings::Model,
    ) -> CoreResult<Option<Committed>> {
        if b.status == BookingStatus::Cancelled.as_str() {
            let expired = audit_log::Entity::find()
                .filter(audit_log::Column::EntityType.eq("booking"))
                .filter(audit_log::Column::EntityId.eq(b.id))
                .filter(audit_log::Column::Action.eq("booking.expired"))
                .count(conn)
                .await?;
            return Ok((expired > 0).then(Committed::default));
        }
        if !is_expired_hold(b, self.clock.now()) {
            return Ok(None);
        }
        let changes = Changes {
            status: Some(BookingStatus::Cancelled),
            ..Changes::default()
        };
        let done = self
            .change_booking(conn, &ActorRef::system(), b, changes, Cause::Expired)
            .await?;
        Ok(Some(
            done.map_or_else(Committed::default, |(_, units, feed)| Committed {
                units,
                feed,
            }),
        ))
    }

    /// Cancels `PENDING_PAYMENT` bookings past `expiresAt` and frees their units, in batches.
    /// On PostgreSQL the due rows are locked `FOR UPDATE SKIP LOCKED`, so several instances (or a
    /// request cancelling a lapsed hold itself) never block or double-cancel; each cancellation is
    /// still a conditional update. Returns how many were cancelled.
    pub async fn expire_holds(&self) -> CoreResult<usize> {
        let mut total = 0;
        loop {
            let txn = begin_write(&self.db).await?;
            let now = self.clock.now();
            let mut due = bookings::Entity::find()
                .filter(bookings::Column::Status.eq(BookingStatus::PendingPayment.as_str()))
                .filter(bookings::Column::ExpiresAt.lt(now))
                .order_by_asc(bookings::Column::ExpiresAt)
                .limit(EXPIRY_BATCH)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(&txn)
                .await?;
            // Projects' seq rows are then locked in one global order: two sweepers cannot deadlock.
            due.sort_by_key(|b| b.project_id);
            let mut events = Vec::new();
            let mut feed = Vec::new();
            for b in &due {
                let changes = Changes {
                    status: Some(BookingStatus::Cancelled),
                    ..Changes::default()
                };
                if let Some((_, ev, notes)) = self
                    .change_booking(&txn, &ActorRef::system(), b, changes, Cause::Expired)
                    .await?
                {
                    total += 1;
                    events.extend(ev);
                    feed.extend(notes);
                }
            }
            txn.commit().await?;
            self.publish(&events).await;
            self.publish_feed(&feed).await;
            if (due.len() as u64) < EXPIRY_BATCH {
                return Ok(total);
            }
        }
    }
}
