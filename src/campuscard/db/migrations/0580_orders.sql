-- Escrowed orders: a merchant's online shop (campus store, print shop, clinic) creates an order
-- through its signed shop terminal; the cardholder pays it into a ledger hold (kind 'order',
-- owner 'order'); the money reaches the merchant only when a release condition is met (the
-- buyer confirms, a time after shipping passes, the buyer's one-time delivery code is handed
-- to the courier), in part or whole; an order not shipped by its deadline is refunded by the
-- hold's void; a dispute goes to the settlement center and is decided by two people.
-- docs/orders.md, docs/decisions/0210-escrowed-orders-on-holds.md

-- the shop server is a signed terminal of its merchant
ALTER TABLE terminals DROP CONSTRAINT terminals_kind_check;
ALTER TABLE terminals ADD CONSTRAINT terminals_kind_check
    CHECK (kind IN ('pos', 'kiosk', 'door', 'shop'));
ALTER TABLE terminals ADD CONSTRAINT terminals_shop_has_merchant
    CHECK (kind <> 'shop' OR merchant_id IS NOT NULL);

-- a dispute's decision is a proposal a second person approves (decision 0120); every kind kept
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_check CHECK (kind IN (
    'adjustment', 'counter_op', 'payout_account', 'drawer_float', 'bill_adjustment',
    'order_dispute'));

CREATE TABLE orders (
    school_id        int NOT NULL REFERENCES schools(id),
    id               bigint GENERATED ALWAYS AS IDENTITY,
    merchant_id      bigint NOT NULL,
    terminal_id      bigint NOT NULL,                  -- the shop that created it
    order_no         text NOT NULL CHECK (order_no ~ '^[A-Za-z0-9_.:-]{4,64}$'),  -- the shop's id
    request_hash     text NOT NULL,
    person_id        bigint NOT NULL,                  -- the buyer
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 64),
    items            jsonb NOT NULL,                   -- [{"name", "qty", "unit_price"}] in fen
    amount           bigint NOT NULL CHECK (amount > 0 AND amount <= 10000000),
    released         bigint NOT NULL DEFAULT 0 CHECK (released >= 0),   -- paid to the merchant
    refunded         bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0),   -- given back to the buyer
    state            text NOT NULL DEFAULT 'wait_buyer_pay' CHECK (state IN (
                         'wait_buyer_pay', 'wait_seller_send', 'wait_buyer_confirm', 'disputed',
                         'finished', 'closed')),
    delivery_address text NOT NULL DEFAULT '' CHECK (length(delivery_address) <= 200),
    pay_by           timestamptz NOT NULL,             -- unpaid after this: closed
    ship_within      interval NOT NULL,                -- from payment to the ship deadline
    confirm_within   interval NOT NULL,                -- from shipping to the automatic release
    ship_by          timestamptz,                      -- set at payment
    release_at       timestamptz,                      -- set at shipping
    tracking         text NOT NULL DEFAULT '' CHECK (length(tracking) <= 64),
    hold_seq         int NOT NULL DEFAULT 0,           -- the current hold is order-<school>-<id>-<seq>
    code_failures    int NOT NULL DEFAULT 0,           -- wrong delivery codes (the code is derived)
    code_used_at     timestamptz,
    pay_client_id    text,
    paid_via         text CHECK (paid_via IN ('phone', 'reader')),
    dispute_reason   text,
    dispute_state_before text,
    approval_id      bigint,                           -- the pending dispute decision
    close_reason     text CHECK (close_reason IN ('not_paid', 'not_shipped', 'refunded',
                                                  'dispute', 'hold_expired', 'cancelled')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    paid_at          timestamptz,
    shipped_at       timestamptz,
    ended_at         timestamptz,
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, merchant_id, order_no),
    FOREIGN KEY (school_id, merchant_id) REFERENCES merchants(school_id, id),
    FOREIGN KEY (school_id, terminal_id) REFERENCES terminals(school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    FOREIGN KEY (school_id, approval_id) REFERENCES approvals(school_id, id),
    CHECK (released + refunded <= amount),
    CHECK ((state IN ('finished', 'closed')) = (ended_at IS NOT NULL)),
    CHECK (state NOT IN ('finished', 'closed') OR state = 'closed' AND paid_at IS NULL
           OR released + refunded = amount),
    CHECK (state <> 'finished' OR released > 0)
);
CREATE INDEX orders_person ON orders(school_id, person_id, created_at);
CREATE INDEX orders_merchant ON orders(school_id, merchant_id, created_at);
CREATE INDEX orders_open ON orders(school_id, state) WHERE state NOT IN ('finished', 'closed');

-- What happened to an order, in order: the merchant's page and the slip read it.
CREATE TABLE order_events (
    school_id   int NOT NULL REFERENCES schools(id),
    id          bigint GENERATED ALWAYS AS IDENTITY,
    order_id    bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN (
                    'created', 'paid', 'shipped', 'released', 'refunded', 'disputed',
                    'dispute_proposed', 'dispute_decided', 'closed', 'finished', 'hold_renewed',
                    'code_refused')),
    amount      bigint,
    actor       text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, order_id) REFERENCES orders(school_id, id)
);
CREATE INDEX order_events_order ON order_events(school_id, order_id, id);
