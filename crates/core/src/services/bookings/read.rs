//! Reading bookings: the list, one booking, what a viewer may see, and the CSV export's pages.

use super::*;

impl Services {
    /// `GET /bookings`: admins see every booking, marketing users their own.
    pub async fn list_bookings(
        &self,
        viewer: Viewer,
        query: &str,
    ) -> CoreResult<Page<BookingView>> {
        let q = ListQuery::parse(query, &BOOKING_LIST)?;
        let page = q
            .fetch(viewer.scope(bookings::Entity::find()), &self.db)
            .await?;
        let views = self.embed(viewer, page.data).await?;
        Ok(Page {
            data: views,
            meta: page.meta,
        })
    }

    /// `GET /bookings/{id}` (404 for a marketing user's colleague's booking).
    pub async fn get_booking(&self, viewer: Viewer, id: Uuid) -> CoreResult<BookingView> {
        let b = self.visible_booking(&self.db, viewer, id).await?;
        self.embed(viewer, vec![b])
            .await?
            .pop()
            .ok_or(CoreError::NotFound("booking"))
    }

    /// A booking the viewer may see, or 404.
    pub async fn visible_booking<C: ConnectionTrait>(
        &self,
        conn: &C,
        viewer: Viewer,
        id: Uuid,
    ) -> CoreResult<bookings::Model> {
        viewer
            .scope(bookings::Entity::find_by_id(id))
            .one(conn)
            .await?
            .ok_or(CoreError::NotFound("booking"))
    }

    /// Adds the unit and customer objects to bookings (two queries, whatever the count).
    pub(super) async fn embed(
        &self,
        viewer: Viewer,
        rows: Vec<bookings::Model>,
    ) -> CoreResult<Vec<BookingView>> {
        let unit_ids: Vec<Uuid> = rows.iter().map(|b| b.unit_id).collect();
        let customer_ids: Vec<Uuid> = rows.iter().map(|b| b.customer_id).collect();
        let units: HashMap<Uuid, units::Model> = units::Entity::find()
            .filter(units::Column::Id.is_in(unit_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let customers: HashMap<Uuid, customers::Model> = customers::Entity::find()
            .filter(customers::Column::Id.is_in(customer_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        rows.into_iter()
            .map(|b| {
                let unit = units.get(&b.unit_id).cloned().map(BookingUnit::from);
                let customer = match customers.get(&b.customer_id).cloned() {
                    Some(c) => Some(self.customer_view(c, viewer.role)?),
                    None => None,
                };
                Ok(booking_view(b, unit, customer))
            })
            .collect()
    }

    /// One page of the CSV export: bookings after `after` (by id, which is time-ordered), with
    /// the list filters and the viewer's scope.
    pub async fn export_bookings_page(
        &self,
        viewer: Viewer,
        query: &ListQuery<bookings::Column>,
        after: Option<Uuid>,
        limit: u64,
    ) -> CoreResult<Vec<BookingExportRow>> {
        let mut select = query.apply_filters(viewer.scope(bookings::Entity::find()));
        if let Some(a) = after {
            select = select.filter(bookings::Column::Id.gt(a));
        }
        let rows = select
            .order_by_asc(bookings::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let ids = |f: fn(&bookings::Model) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
        let units: HashMap<Uuid, String> = units::Entity::find()
            .filter(units::Column::Id.is_in(ids(|b| b.unit_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.block_number))
            .collect();
        let customers: HashMap<Uuid, (String, String)> = customers::Entity::find()
            .filter(customers::Column::Id.is_in(ids(|b| b.customer_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, (c.name, c.phone)))
            .collect();
        let marketing: HashMap<Uuid, String> = users::Entity::find()
            .filter(users::Column::Id.is_in(ids(|b| b.marketing_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.full_name))
            .collect();
        Ok(rows
            .into_iter()
            .map(|b| {
                let (customer_name, customer_phone) =
                    customers.get(&b.customer_id).cloned().unwrap_or_default();
                BookingExportRow {
                    unit_block_number: units.get(&b.unit_id).cloned().unwrap_or_default(),
                    marketing_name: marketing.get(&b.marketing_id).cloned().unwrap_or_default(),
                    customer_name,
                    customer_phone,
                    id: b.id,
                    booking_code: b.booking_code,
                    booking_date: b.booking_date,
                    status: b.status,
                    payment_status: b.payment_status,
                    payment_method: b.payment_method,
                    payment_date: b.payment_date,
                    booking_fee: b.booking_fee,
                    expires_at: b.expires_at,
                }
            })
            .collect())
    }
}
