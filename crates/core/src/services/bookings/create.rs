//! Making a booking: the claim of the unit, the customer, the year's number and the event, on
//! SQLite in one transaction and on PostgreSQL through the batch statement.

use super::*;

impl Services {
    /// `POST /bookings` (ADMIN or verified MARKETING; the caller checks): one transaction claims
    /// the unit, creates or matches the customer, takes the year's next number and inserts the booking.
    pub async fn create_booking(
        &self,
        actor: &ActorRef,
        user: &users::Model,
        input: NewBooking,
    ) -> CoreResult<BookingView> {
        let viewer = Viewer::of(user);
        let mut errors = Vec::new();
        if !(0..=MAX_BOOKING_FEE).contains(&input.booking_fee) {
            errors.push(FieldError::new(
                "bookingFee",
                "out_of_range",
                "a whole number of rupiah, 0 to 1,000,000,000,000",
            ));
        }
        check_notes(&input.notes, &mut errors);
        let inline = match (&input.customer_id, &input.customer) {
            (Some(_), None) => None,
            (None, Some(c)) => match self.validate_customer(c, "customer.") {
                Ok(v) => Some(v),
                Err(CoreError::Validation(e)) => {
                    errors.extend(e);
                    None
                }
                Err(e) => return Err(e),
            },
            _ => {
                errors.push(FieldError::new(
                    "customerId",
                    "required",
                    "give exactly one of customerId or customer",
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }

        let now = self.clock.now();
        let id = Uuid::now_v7();
        let inline = inline.map(|valid| self.new_customer_row(actor, valid));
        let draft = bookings::Model {
            id,
            // Set by the statement that takes the year's number.
            booking_code: String::new(),
            // Set from the claimed unit.
            project_id: Uuid::nil(),
            unit_id: input.unit_id,
            customer_id: match (&inline, input.customer_id) {
                (Some(c), _) => c.id,
                (None, Some(id)) => id,
                (None, None) => return Err(CoreError::Internal("no customer".into())),
            },
            marketing_id: user.id,
            booking_date: now,
            status: BookingStatus::PendingPayment.as_str().to_owned(),
            payment_status: PaymentStatus::Pending.as_str().to_owned(),
            payment_method: input.payment_method.map(|m| m.as_str().to_owned()),
            payment_date: None,
            booking_fee: input.booking_fee,
            notes: input.notes,
            // Set from the project's hold.
            expires_at: now,
            cancelled_at: None,
            deleted_at: None,
            created_at: now,
            updated_at: now,
        };
        let change = UnitChange {
            // Project and block number are filled in from the claimed unit.
            project_id: Uuid::nil(),
            unit_id: input.unit_id,
            block_number: String::new(),
            from: UnitStatus::Available,
            to: UnitStatus::Booked,
            // The code is filled in once the counter is taken.
            booking: Some(BookingInfo {
                booking_id: id,
                booking_code: String::new(),
                marketing_name: user.full_name.clone(),
            }),
        };
        // Each path publishes the booking's event once it is committed.
        let (booking, unit, customer, _event) =
            if self.db.get_database_backend() == DbBackend::Postgres {
                self.book_in_batch(actor, draft, inline, change).await?
            } else {
                self.book_in_transaction(actor, draft, inline, change)
                    .await?
            };
        let customer = self.customer_view(customer, viewer.role)?;
        Ok(booking_view(booking, Some(unit), Some(customer)))
    }

    /// PostgreSQL: the booking is made in a batch statement (see [`postgres_batch`](super::postgres_batch)) through the booking gate,
    /// which also publishes its event.
    pub(super) async fn book_in_batch(
        &self,
        actor: &ActorRef,
        draft: bookings::Model,
        inline: Option<customers::Model>,
        change: UnitChange,
    ) -> CoreResult<Booked> {
        let unit_id = draft.unit_id;
        let item = postgres_batch::BatchItem {
            booking_audit: booking_created_audit(&draft, None),
            year: booking_year(draft.booking_date),
            draft,
            event_id: Uuid::now_v7(),
            actor_id: actor.user_id,
            request_id: actor.request_id.clone(),
            unit_audit: change.audit_entry(),
            change,
            inline_customer: inline.map(|c| {
                let audit = Self::customer_created_audit(&c);
                (c, audit)
            }),
        };
        match self.booking_gate.book(self, item).await {
            Ok(Some(booked)) => Ok(booked),
            Ok(None) => Err(self.why_not_claimed(unit_id).await),
            Err(CoreError::Db(ref db)) if is_live_booking_violation(db) => {
                // ux_bookings_live_unit: a second line of defence behind the conditional claim.
                Err(unit_not_available())
            }
            Err(CoreError::Db(ref db)) if is_missing_customer(db) => Err(unknown_customer()),
            Err(e) => Err(e),
        }
    }

    /// Completes a booking the batch statement made: its row, unit, customer and event.
    pub(super) async fn finish_batched(
        &self,
        item: postgres_batch::BatchItem,
        row: postgres_batch::BookedRow,
    ) -> CoreResult<Booked> {
        let postgres_batch::BatchItem {
            mut draft,
            mut change,
            year,
            ..
        } = item;
        if row.booking_code != booking_code(year, row.number) {
            return Err(CoreError::Internal(format!(
                "booking code {} does not match number {}",
                row.booking_code, row.number
            )));
        }
        draft.project_id = row.project_id;
        draft.booking_code = row.booking_code;
        draft.expires_at = row.expires_at;
        let customer = match row.customer {
            Some(c) => c,
            None => customers::Entity::find_by_id(draft.customer_id)
                .one(&self.db)
                .await?
                .ok_or(CoreError::Internal("booked customer vanished".into()))?,
        };
        draft.customer_id = customer.id;
        change.project_id = row.project_id;
        change.block_number = row.block_number.clone();
        if let Some(info) = change.booking.as_mut() {
            info.booking_code = draft.booking_code.clone();
        }
        let event = change.into_event(row.seq, draft.booking_date, row.palette.as_ref());
        let unit = BookingUnit {
            id: draft.unit_id,
            project_id: row.project_id,
            block_number: row.block_number,
            unit_type: row.unit_type,
            price: row.price,
            status: UnitStatus::Booked.as_str().to_owned(),
        };
        Ok((draft, unit, customer, event))
    }

    /// The single-writer path (SQLite): one transaction of separate statements, in the same
    /// order as the PostgreSQL statement takes its locks; publishes the event after commit.
    pub(super) async fn book_in_transaction(
        &self,
        actor: &ActorRef,
        mut draft: bookings::Model,
        inline: Option<customers::Model>,
        mut change: UnitChange,
    ) -> CoreResult<Booked> {
        let txn = begin_write(&self.db).await?;
        // The claim: of many concurrent bookings exactly one sees a row change.
        let claimed = set_unit_status_returning(
            &txn,
            draft.booking_date,
            draft.unit_id,
            change.from,
            change.to,
        )
        .await?;
        let Some(unit) = claimed else {
            drop(txn);
            return Err(self.why_not_claimed(draft.unit_id).await);
        };
        let (customer, customer_created) = match inline {
            None => (
                customers::Entity::find_by_id(draft.customer_id)
                    .one(&txn)
                    .await?
                    .ok_or_else(unknown_customer)?,
                false,
            ),
            Some(row) => self.insert_customer_row(&txn, row, true).await?,
        };
        draft.customer_id = customer.id;
        draft.project_id = unit.project_id;
        change.project_id = unit.project_id;
        change.block_number = unit.block_number.clone();
        let customer_audit = customer_created.then(|| Self::customer_created_audit(&customer));
        audit::record_many(
            &txn,
            self.clock.as_ref(),
            actor,
            customer_audit.into_iter().chain([
                booking_created_audit(&draft, Some(customer.id)),
                change.audit_entry(),
            ]),
        )
        .await?;
        let (booking, event) = insert_booking(&txn, self.clock.as_ref(), actor, draft, change)
            .await
            .map_err(|e| match e {
                // The unique live-booking index: a second line of defence behind the claim.
                CoreError::Db(ref db) if is_live_booking_violation(db) => unit_not_available(),
                e => e,
            })?;
        txn.commit().await?;
        self.publish(std::slice::from_ref(&event)).await;
        let mut unit = BookingUnit::from(unit);
        unit.status = UnitStatus::Booked.as_str().to_owned();
        Ok((booking, unit, customer, event))
    }

    /// Why a claim changed no row: the unit is missing (404) or not AVAILABLE (409).
    pub(super) async fn why_not_claimed(&self, unit_id: Uuid) -> CoreError {
        match units::Entity::find_by_id(unit_id).one(&self.db).await {
            Ok(Some(_)) => unit_not_available(),
            Ok(None) => CoreError::NotFound("unit"),
            Err(e) => e.into(),
        }
    }
}
