-- Attendance from the same card swipes as the doors: attendance points (the readers of a
-- classroom, a dormitory's curfew door, the gates), rules per class and period, the teachers
-- of each class, leave requests the teacher approves, the teacher's own corrections, and the
-- periods already closed (absences told to parents once). See docs/access.md "Attendance".

CREATE TABLE attendance_points (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    kind            text NOT NULL CHECK (kind IN ('classroom', 'dorm', 'gate', 'lab')),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, name)
);

CREATE TABLE attendance_point_doors (
    school_id       int NOT NULL REFERENCES schools(id),
    point_id        bigint NOT NULL,
    door_id         bigint NOT NULL,
    PRIMARY KEY (school_id, point_id, door_id),
    FOREIGN KEY (school_id, point_id) REFERENCES attendance_points(school_id, id) ON DELETE CASCADE,
    FOREIGN KEY (school_id, door_id) REFERENCES access_doors(school_id, id)
);
CREATE INDEX attendance_point_doors_door ON attendance_point_doors(school_id, door_id);

-- A period a class must sign in for at a point, on the given weekdays (a 调休 make-up workday
-- counts as the weekday it runs as; a holiday only if on_holidays), in school-local time:
-- a first sign-in in [opens_at, on_time_until] is present, after it until closes_at is late,
-- none by closes_at is absent (unless on approved leave).
CREATE TABLE attendance_rules (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    class_id        bigint NOT NULL,
    point_id        bigint NOT NULL,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    weekdays        smallint[] NOT NULL CHECK (weekdays <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]
                                               AND cardinality(weekdays) >= 1),
    opens_at        time NOT NULL,
    on_time_until   time NOT NULL,
    closes_at       time NOT NULL,
    direction       text CHECK (direction IN ('in', 'out')),   -- NULL: either way counts
    on_holidays     boolean NOT NULL DEFAULT false,
    notify_guardians boolean NOT NULL DEFAULT false,
    active          boolean NOT NULL DEFAULT true,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, class_id, name),
    FOREIGN KEY (school_id, class_id) REFERENCES classes(school_id, id),
    FOREIGN KEY (school_id, point_id) REFERENCES attendance_points(school_id, id),
    CHECK (opens_at <= on_time_until AND on_time_until < closes_at)
);

-- The teachers (班主任) of a class: they read its sheets and decide its leave requests.
CREATE TABLE attendance_class_teachers (
    school_id       int NOT NULL REFERENCES schools(id),
    class_id        bigint NOT NULL,
    user_id         bigint NOT NULL,
    PRIMARY KEY (school_id, class_id, user_id),
    FOREIGN KEY (school_id, class_id) REFERENCES classes(school_id, id)
);
CREATE INDEX attendance_class_teachers_user ON attendance_class_teachers(school_id, user_id);

CREATE TABLE attendance_leaves (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    person_id       bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('sick', 'personal', 'other')),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'approved', 'rejected', 'cancelled')),
    requested_by    text NOT NULL,
    requested_by_user bigint,
    decided_by      text,
    decided_at      timestamptz,
    decision_note   text NOT NULL DEFAULT '' CHECK (length(decision_note) <= 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK (ends_at > starts_at),
    CHECK ((state IN ('approved', 'rejected')) = (decided_at IS NOT NULL))
);
CREATE INDEX attendance_leaves_person ON attendance_leaves(school_id, person_id, starts_at);

-- The teacher's correction of one student's period on one day (a card left at home, a
-- reader that was down): it wins over what the readers say.
CREATE TABLE attendance_marks (
    school_id       int NOT NULL REFERENCES schools(id),
    rule_id         bigint NOT NULL,
    day             date NOT NULL,
    person_id       bigint NOT NULL,
    status          text NOT NULL CHECK (status IN ('present', 'late', 'absent', 'leave')),
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 200),
    set_by          text NOT NULL,
    set_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, rule_id, day, person_id),
    FOREIGN KEY (school_id, rule_id) REFERENCES attendance_rules(school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);

-- A period whose closing time has passed and whose absences were counted (and told to the
-- parents when the rule says so): once per rule and day, by whichever process gets there.
CREATE TABLE attendance_closed (
    school_id       int NOT NULL REFERENCES schools(id),
    rule_id         bigint NOT NULL,
    day             date NOT NULL,
    absent          int NOT NULL,
    notified        int NOT NULL,
    closed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, rule_id, day),
    FOREIGN KEY (school_id, rule_id) REFERENCES attendance_rules(school_id, id)
);
