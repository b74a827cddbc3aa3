//! Object metadata: every standard object is declared here once, and the generic machinery
//! (validation, storage, listing, API schema, UI) is driven from these declarations.

use once_cell::sync::Lazy;
use serde::Serialize;

/// How a field's value is typed, validated and stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    Text {
        max_len: usize,
    },
    LongText {
        max_len: usize,
    },
    Email,
    Phone,
    Url,
    Integer {
        min: i64,
        max: i64,
    },
    /// Stored as a JSON number in custom fields; standard objects use money or integers.
    Decimal,
    /// Integer minor units in storage; the ISO 4217 code lives in `currency_field`.
    Money {
        currency_field: String,
    },
    Percent,
    Date,
    DateTime,
    Boolean,
    Enum {
        options: Vec<EnumOption>,
    },
    MultiEnum {
        options: Vec<EnumOption>,
    },
    Reference {
        object: String,
    },
    User,
    Tags,
    Json,
    Currency,
    Country,
    Gstin,
}

impl FieldKind {
    pub fn name(&self) -> &'static str {
        match self {
            FieldKind::Text { .. } => "text",
            FieldKind::LongText { .. } => "long_text",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
            FieldKind::Url => "url",
            FieldKind::Integer { .. } => "integer",
            FieldKind::Decimal => "decimal",
            FieldKind::Money { .. } => "money",
            FieldKind::Percent => "percent",
            FieldKind::Date => "date",
            FieldKind::DateTime => "datetime",
            FieldKind::Boolean => "boolean",
            FieldKind::Enum { .. } => "enum",
            FieldKind::MultiEnum { .. } => "multi_enum",
            FieldKind::Reference { .. } => "reference",
            FieldKind::User => "user",
            FieldKind::Tags => "tags",
            FieldKind::Json => "json",
            FieldKind::Currency => "currency",
            FieldKind::Country => "country",
            FieldKind::Gstin => "gstin",
        }
    }

    /// The storage class of the column, shared by both backends' schema and the binder.
    pub fn sql_type(&self) -> SqlType {
        match self {
            FieldKind::Integer { .. } | FieldKind::Money { .. } | FieldKind::Percent => SqlType::Int,
            FieldKind::Decimal => SqlType::Float,
            FieldKind::Boolean => SqlType::Bool,
            FieldKind::Date => SqlType::Date,
            FieldKind::DateTime => SqlType::Timestamp,
            FieldKind::Reference { .. } | FieldKind::User => SqlType::Uuid,
            FieldKind::MultiEnum { .. } | FieldKind::Tags | FieldKind::Json => SqlType::Json,
            _ => SqlType::Text,
        }
    }

    pub fn options(&self) -> &[EnumOption] {
        match self {
            FieldKind::Enum { options } | FieldKind::MultiEnum { options } => options,
            _ => &[],
        }
    }
}

/// Storage classes. SQLite keeps uuids, dates and timestamps as fixed-format text so that
/// text order equals time order; PostgreSQL uses its native types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlType {
    Text,
    Int,
    Float,
    Bool,
    Uuid,
    Date,
    Timestamp,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnumOption {
    pub value: String,
    pub label: String,
    pub colour: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub name: String,
    pub label: String,
    #[serde(flatten)]
    pub kind: FieldKind,
    pub required: bool,
    /// Set by the system (computed or workflow-owned): rejected on input.
    pub read_only: bool,
    pub searchable: bool,
    pub custom: bool,
    pub section: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// The migration that added the column (1 for the first schema); lets the schema test
    /// tell the first migration's tables from later `ALTER TABLE`s.
    #[serde(skip)]
    pub since: u32,
}

impl Field {
    pub fn is_enum_value(&self, v: &str) -> bool {
        self.kind.options().iter().any(|o| o.value == v)
    }
}

/// What DELETE means for an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// Sets `deleted_at`; restore clears it.
    SoftDelete,
    /// Accounts are never deleted: DELETE sets `is_active = false`; restore sets it back.
    Deactivate,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectDef {
    /// API name and table name, plural (`leads`).
    pub name: String,
    pub singular: String,
    pub label: String,
    pub label_plural: String,
    /// Prefix of the per-company human number (`LEAD-00042`).
    pub number_prefix: String,
    pub delete_mode: DeleteMode,
    /// Fields joined to form a record's display title.
    pub title_fields: Vec<String>,
    pub fields: Vec<Field>,
}

impl ObjectDef {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Columns every record table carries besides its fields.
pub const SYSTEM_COLUMNS: &[(&str, SqlType)] = &[
    ("id", SqlType::Uuid),
    ("company_id", SqlType::Uuid),
    ("number", SqlType::Text),
    ("version", SqlType::Int),
    ("created_at", SqlType::Timestamp),
    ("updated_at", SqlType::Timestamp),
    ("created_by", SqlType::Uuid),
    ("updated_by", SqlType::Uuid),
    ("deleted_at", SqlType::Timestamp),
    ("custom", SqlType::Json),
];

pub const OBJECT_NAMES: &[&str] = &["leads", "accounts", "contacts", "deals", "tasks", "activities"];

pub fn objects() -> &'static [ObjectDef] {
    &OBJECTS
}

pub fn object(name: &str) -> Option<&'static ObjectDef> {
    OBJECTS.iter().find(|o| o.name == name)
}

fn opts(list: &[(&str, &str, &str)]) -> Vec<EnumOption> {
    list.iter().map(|(v, l, c)| EnumOption { value: (*v).into(), label: (*l).into(), colour: (*c).into() }).collect()
}

/// A small builder so the declarations below read like a schema.
struct F(Field);

fn f(name: &str, label: &str, kind: FieldKind) -> F {
    F(Field {
        name: name.into(),
        label: label.into(),
        kind,
        required: false,
        read_only: false,
        searchable: false,
        custom: false,
        section: "Details".into(),
        default: None,
        since: 1,
    })
}

impl F {
    fn required(mut self) -> Self {
        self.0.required = true;
        self
    }
    fn read_only(mut self) -> Self {
        self.0.read_only = true;
        self
    }
    fn searchable(mut self) -> Self {
        self.0.searchable = true;
        self
    }
    fn section(mut self, s: &str) -> Self {
        self.0.section = s.into();
        self
    }
    fn default(mut self, v: serde_json::Value) -> Self {
        self.0.default = Some(v);
        self
    }
    fn since(mut self, migration: u32) -> Self {
        self.0.since = migration;
        self
    }
}

fn text(n: &str, l: &str) -> F {
    f(n, l, FieldKind::Text { max_len: 255 })
}
fn long(n: &str, l: &str) -> F {
    f(n, l, FieldKind::LongText { max_len: 20_000 })
}
fn int(n: &str, l: &str, min: i64, max: i64) -> F {
    f(n, l, FieldKind::Integer { min, max })
}
fn en(n: &str, l: &str, o: &[(&str, &str, &str)]) -> F {
    f(n, l, FieldKind::Enum { options: opts(o) })
}
fn reference(n: &str, l: &str, object: &str) -> F {
    f(n, l, FieldKind::Reference { object: object.into() })
}
fn user(n: &str, l: &str) -> F {
    f(n, l, FieldKind::User)
}
fn boolean(n: &str, l: &str) -> F {
    f(n, l, FieldKind::Boolean).default(serde_json::Value::Bool(false))
}

pub const PRIORITY: &[(&str, &str, &str)] = &[("low", "Low", "grey"), ("medium", "Medium", "blue"), ("high", "High", "red")];

pub const LEAD_STATUS: &[(&str, &str, &str)] = &[
    ("new", "New", "blue"),
    ("contacted", "Contacted", "teal"),
    ("nurturing", "Nurturing", "purple"),
    ("qualified", "Qualified", "green"),
    ("unqualified", "Unqualified", "orange"),
    ("converted", "Converted", "green"),
    ("recycled", "Recycled", "grey"),
    ("disqualified", "Disqualified", "red"),
];

pub const LEAD_SOURCE: &[(&str, &str, &str)] = &[
    ("website", "Website form", "blue"),
    ("whatsapp", "WhatsApp", "green"),
    ("inbound_call", "Inbound call", "teal"),
    ("email", "Email", "purple"),
    ("partner", "Partner", "orange"),
    ("event", "Event", "yellow"),
    ("import", "Import", "grey"),
    ("referral", "Referral", "green"),
    ("social", "Social media", "blue"),
    ("paid_ads", "Paid ads", "red"),
    ("other", "Other", "grey"),
];

pub const TASK_TYPE: &[(&str, &str, &str)] = &[
    ("todo", "To-do", "grey"),
    ("call", "Call", "teal"),
    ("email", "Email", "blue"),
    ("whatsapp", "WhatsApp", "green"),
    ("meeting", "Meeting", "purple"),
];

pub const DEAL_STAGE: &[(&str, &str, &str)] = &[
    ("prospecting", "Prospecting", "grey"),
    ("qualification", "Qualification", "blue"),
    ("proposal", "Proposal", "purple"),
    ("negotiation", "Negotiation", "orange"),
    ("closed_won", "Closed Won", "green"),
    ("closed_lost", "Closed Lost", "red"),
];

static OBJECTS: Lazy<Vec<ObjectDef>> = Lazy::new(|| vec![lead(), account(), contact(), deal(), task(), activity()]);

fn obj(name: &str, singular: &str, label: &str, plural: &str, prefix: &str, title: &[&str], fields: Vec<F>) -> ObjectDef {
    ObjectDef {
        name: name.into(),
        singular: singular.into(),
        label: label.into(),
        label_plural: plural.into(),
        number_prefix: prefix.into(),
        delete_mode: DeleteMode::SoftDelete,
        title_fields: title.iter().map(|s| (*s).into()).collect(),
        fields: fields.into_iter().map(|f| f.0).collect(),
    }
}

fn lead() -> ObjectDef {
    let score = |n: &str, l: &str| int(n, l, 0, 10).section("BANT");
    let meddicc = |n: &str, l: &str| long(n, l).section("MEDDICC");
    obj(
        "leads",
        "lead",
        "Lead",
        "Leads",
        "LEAD",
        &["first_name", "last_name"],
        vec![
            text("first_name", "First name").searchable(),
            text("last_name", "Last name").required().searchable(),
            text("company_name", "Company").searchable(),
            f("email", "Email", FieldKind::Email).searchable(),
            f("phone", "Phone", FieldKind::Phone).searchable(),
            f("country", "Country", FieldKind::Country),
            text("job_title", "Job title"),
            en("source", "Source", LEAD_SOURCE).section("Attribution"),
            text("campaign", "Campaign").section("Attribution"),
            text("medium", "Medium").section("Attribution"),
            text("term", "Term").section("Attribution"),
            user("owner_id", "Owner"),
            en("status", "Status", LEAD_STATUS).required().default("new".into()),
            en(
                "stage",
                "Stage",
                &[
                    ("awareness", "Awareness", "blue"),
                    ("consideration", "Consideration", "purple"),
                    ("decision", "Decision", "orange"),
                    ("converted", "Converted", "green"),
                ],
            )
            .default("awareness".into()),
            int("lead_score", "Lead score", 0, 100).default(0.into()),
            en("priority", "Priority", PRIORITY).default("medium".into()),
            text("interest_product", "Product of interest"),
            text("budget_range", "Budget range"),
            en(
                "authority_level",
                "Authority",
                &[("decision_maker", "Decision Maker", "green"), ("influencer", "Influencer", "blue"), ("user", "User", "grey")],
            ),
            text("timeline", "Timeline"),
            score("bant_budget_score", "Budget score"),
            long("bant_budget_notes", "Budget notes").section("BANT"),
            score("bant_authority_score", "Authority score"),
            long("bant_authority_notes", "Authority notes").section("BANT"),
            score("bant_need_score", "Need score"),
            long("bant_need_notes", "Need notes").section("BANT"),
            score("bant_timeline_score", "Timeline score"),
            long("bant_timeline_notes", "Timeline notes").section("BANT"),
            meddicc("meddicc_metrics", "Metrics"),
            meddicc("meddicc_economic_buyer", "Economic buyer"),
            meddicc("meddicc_decision_criteria", "Decision criteria"),
            meddicc("meddicc_decision_process", "Decision process"),
            meddicc("meddicc_identify_pain", "Identified pain"),
            meddicc("meddicc_champion", "Champion"),
            meddicc("meddicc_competition", "Competition"),
            boolean("gdpr_consent", "GDPR consent").section("Consent"),
            boolean("dnd_status", "Do not disturb").section("Consent"),
            f("opt_in_date", "Opt-in date", FieldKind::DateTime).section("Consent"),
            boolean("is_duplicate", "Duplicate").section("Data quality"),
            reference("duplicate_of_id", "Duplicate of", "leads").section("Data quality"),
            en("spam_score", "Spam score", &[("low", "Low", "green"), ("medium", "Medium", "orange"), ("high", "High", "red")])
                .section("Data quality")
                .default("low".into()),
            en(
                "validation_status",
                "Validation",
                &[("valid", "Valid", "green"), ("invalid", "Invalid", "red"), ("pending", "Pending", "orange")],
            )
            .section("Data quality")
            .default("pending".into()),
            f("converted_at", "Converted at", FieldKind::DateTime).read_only().section("Conversion"),
            reference("converted_account_id", "Converted account", "accounts").read_only().section("Conversion"),
            reference("converted_contact_id", "Converted contact", "contacts").read_only().section("Conversion"),
            reference("converted_deal_id", "Converted deal", "deals").read_only().section("Conversion"),
            f("tags", "Tags", FieldKind::Tags),
            long("notes", "Notes"),
            // Added by migration 5 (governance and qualification).
            text("city", "City").since(5),
            text("state", "State / region").since(5),
            int("company_size", "Company size (employees)", 0, 10_000_000).since(5),
            f("validation_reasons", "Validation notes", FieldKind::Json).read_only().section("Data quality").since(5),
            f("spam_reasons", "Spam signals", FieldKind::Json).read_only().section("Data quality").since(5),
            int("duplicate_score", "Duplicate match score", 0, 100).read_only().section("Data quality").since(5),
            f("duplicate_reasons", "Duplicate reasons", FieldKind::Json).read_only().section("Data quality").since(5),
            f("score_explanation", "Score explanation", FieldKind::Json).read_only().section("Scoring").since(5),
            int("predictive_score", "Predictive score", 0, 100).read_only().section("Scoring").since(5),
            f("last_activity_at", "Last activity", FieldKind::DateTime).read_only().since(5),
            text("qualification_reason", "Qualification reason").section("Qualification").since(5),
            f("recycle_date", "Recycle on", FieldKind::Date).section("Qualification").since(5),
            f("gdpr_consent_at", "Consent given at", FieldKind::DateTime).read_only().section("Consent").since(5),
            text("gdpr_consent_source", "Consent source").section("Consent").since(5),
            text("gdpr_consent_version", "Consent text version").section("Consent").since(5),
        ],
    )
}

fn address(prefix: &str, label: &str) -> Vec<F> {
    let section = format!("{label} address");
    vec![
        text(&format!("{prefix}_street"), &format!("{label} street")).section(&section),
        text(&format!("{prefix}_city"), &format!("{label} city")).section(&section),
        text(&format!("{prefix}_state"), &format!("{label} state")).section(&section),
        text(&format!("{prefix}_postal_code"), &format!("{label} postal code")).section(&section),
        f(&format!("{prefix}_country"), &format!("{label} country"), FieldKind::Country).section(&section),
    ]
}

fn account() -> ObjectDef {
    let mut fields = vec![
        text("name", "Name").required().searchable(),
        en(
            "account_type",
            "Type",
            &[
                ("customer", "Customer", "green"),
                ("prospect", "Prospect", "blue"),
                ("partner", "Partner", "purple"),
                ("competitor", "Competitor", "red"),
                ("reseller", "Reseller", "orange"),
            ],
        )
        .default("prospect".into()),
        text("industry", "Industry"),
        en(
            "company_size",
            "Company size",
            &[
                ("1-10", "1-10", "grey"),
                ("11-50", "11-50", "grey"),
                ("51-100", "51-100", "grey"),
                ("101-500", "101-500", "grey"),
                ("500+", "500+", "grey"),
            ],
        ),
        f("annual_revenue", "Annual revenue", FieldKind::Money { currency_field: "currency".into() }),
        f("currency", "Currency", FieldKind::Currency).default("INR".into()),
        f("website", "Website", FieldKind::Url).searchable(),
        f("phone", "Phone", FieldKind::Phone),
        f("email", "Email", FieldKind::Email),
        f("gstin", "GSTIN", FieldKind::Gstin).searchable(),
    ];
    fields.extend(address("billing", "Billing"));
    fields.extend(address("shipping", "Shipping"));
    fields.extend([
        en(
            "health_score",
            "Health",
            &[("green", "Green", "green"), ("yellow", "Yellow", "yellow"), ("red", "Red", "red"), ("black", "Black", "black")],
        )
        .default("green".into()),
        en(
            "lifecycle_stage",
            "Lifecycle stage",
            &[
                ("mqa", "MQA", "purple"),
                ("sqa", "SQA", "teal"),
                ("prospect", "Prospect", "blue"),
                ("customer", "Customer", "green"),
                ("churned", "Churned", "red"),
                ("inactive", "Inactive", "grey"),
            ],
        )
        .default("prospect".into()),
        f("is_active", "Active", FieldKind::Boolean).default(true.into()),
        user("owner_id", "Owner"),
        reference("parent_account_id", "Parent account", "accounts"),
        text("territory", "Territory"),
        long("description", "Description"),
    ]);
    let mut def = obj("accounts", "account", "Account", "Accounts", "ACC", &["name"], fields);
    def.delete_mode = DeleteMode::Deactivate;
    def
}

fn contact() -> ObjectDef {
    obj(
        "contacts",
        "contact",
        "Contact",
        "Contacts",
        "CON",
        &["full_name"],
        vec![
            reference("account_id", "Account", "accounts"),
            text("first_name", "First name").searchable(),
            text("last_name", "Last name").required().searchable(),
            text("full_name", "Full name").read_only().searchable(),
            f("email", "Email", FieldKind::Email).searchable(),
            f("phone", "Phone", FieldKind::Phone).searchable(),
            text("job_title", "Job title"),
            text("department", "Department"),
            en(
                "role",
                "Role",
                &[
                    ("decision_maker", "Decision Maker", "green"),
                    ("influencer", "Influencer", "blue"),
                    ("champion", "Champion", "purple"),
                    ("end_user", "End User", "grey"),
                    ("technical", "Technical", "teal"),
                    ("executive", "Executive", "orange"),
                ],
            ),
            int("influence_score", "Influence score", 0, 100),
            en(
                "preferred_channel",
                "Preferred channel",
                &[("email", "Email", "blue"), ("phone", "Phone", "teal"), ("whatsapp", "WhatsApp", "green")],
            ),
            boolean("is_primary", "Primary contact"),
            reference("reports_to_id", "Reports to", "contacts"),
            text("language", "Language"),
            user("owner_id", "Owner"),
            // Added by migration 8 (privacy): contacts carry consent and do-not-disturb like leads.
            boolean("gdpr_consent", "GDPR consent").section("Consent").since(8),
            boolean("dnd_status", "Do not disturb").section("Consent").since(8),
            f("opt_in_date", "Opt-in date", FieldKind::DateTime).section("Consent").since(8),
            f("gdpr_consent_at", "Consent given at", FieldKind::DateTime).read_only().section("Consent").since(8),
            text("gdpr_consent_source", "Consent source").section("Consent").since(8),
            text("gdpr_consent_version", "Consent text version").section("Consent").since(8),
        ],
    )
}

fn deal() -> ObjectDef {
    obj(
        "deals",
        "deal",
        "Deal",
        "Deals",
        "DEAL",
        &["name"],
        vec![
            text("name", "Name").required().searchable(),
            reference("account_id", "Account", "accounts").required(),
            reference("primary_contact_id", "Primary contact", "contacts"),
            reference("lead_id", "Lead", "leads"),
            f("value", "Value", FieldKind::Money { currency_field: "currency".into() }),
            f("currency", "Currency", FieldKind::Currency).required().default("INR".into()),
            en("stage", "Stage", DEAL_STAGE).required().default("prospecting".into()),
            f("probability", "Probability", FieldKind::Percent),
            en(
                "forecast_category",
                "Forecast category",
                &[
                    ("pipeline", "Pipeline", "grey"),
                    ("best_case", "Best Case", "blue"),
                    ("commit", "Commit", "purple"),
                    ("closed", "Closed", "green"),
                    ("omitted", "Omitted", "red"),
                ],
            ),
            en(
                "deal_type",
                "Type",
                &[
                    ("new_business", "New Business", "blue"),
                    ("upsell", "Upsell", "green"),
                    ("cross_sell", "Cross-sell", "teal"),
                    ("renewal", "Renewal", "purple"),
                ],
            )
            .default("new_business".into()),
            f("expected_close_date", "Expected close", FieldKind::Date),
            f("actual_close_date", "Closed on", FieldKind::Date),
            en("status", "Status", &[("open", "Open", "blue"), ("closed_won", "Won", "green"), ("closed_lost", "Lost", "red")]).read_only(),
            text("loss_reason", "Loss reason"),
            text("competitors", "Competitors"),
            user("owner_id", "Owner"),
            long("description", "Description"),
        ],
    )
}

fn task() -> ObjectDef {
    let related: Vec<(&str, &str, &str)> =
        vec![("leads", "Lead", "grey"), ("accounts", "Account", "grey"), ("contacts", "Contact", "grey"), ("deals", "Deal", "grey")];
    obj(
        "tasks",
        "task",
        "Task",
        "Tasks",
        "TASK",
        &["title"],
        vec![
            text("title", "Title").required().searchable(),
            long("description", "Description"),
            f("due_at", "Due", FieldKind::DateTime),
            en("priority", "Priority", PRIORITY).default("medium".into()),
            en(
                "status",
                "Status",
                &[
                    ("open", "Open", "blue"),
                    ("in_progress", "In progress", "purple"),
                    ("completed", "Completed", "green"),
                    ("cancelled", "Cancelled", "grey"),
                ],
            )
            .required()
            .default("open".into()),
            user("assignee_id", "Assignee"),
            en("related_object", "Related to", &related),
            f("related_id", "Related record", FieldKind::Reference { object: "*".into() }),
            f("completed_at", "Completed at", FieldKind::DateTime).read_only(),
            // Added by migration 8 (privacy): call, email and WhatsApp tasks are outreach,
            // which do-not-disturb forbids.
            en("task_type", "Type", TASK_TYPE).default("todo".into()).since(8),
        ],
    )
}

fn activity() -> ObjectDef {
    obj(
        "activities",
        "activity",
        "Activity",
        "Activities",
        "ACT",
        &["title"],
        vec![
            en(
                "activity_type",
                "Type",
                &[
                    ("call", "Call", "teal"),
                    ("email", "Email", "blue"),
                    ("meeting", "Meeting", "purple"),
                    ("note", "Note", "grey"),
                    ("status_change", "Status change", "orange"),
                    ("whatsapp", "WhatsApp", "green"),
                ],
            )
            .required(),
            text("title", "Title").required().searchable(),
            long("description", "Description").searchable(),
            int("duration_minutes", "Duration (min)", 0, 24 * 60),
            en(
                "outcome",
                "Outcome",
                &[
                    ("positive", "Positive", "green"),
                    ("negative", "Negative", "red"),
                    ("neutral", "Neutral", "grey"),
                    ("follow_up_required", "Follow-up required", "orange"),
                ],
            ),
            // Defaults to the time of logging when not given.
            f("activity_date", "Date", FieldKind::DateTime),
            user("user_id", "User"),
            reference("lead_id", "Lead", "leads"),
            reference("account_id", "Account", "accounts"),
            reference("contact_id", "Contact", "contacts"),
            reference("deal_id", "Deal", "deals"),
            reference("task_id", "Task", "tasks"),
            // Added by migration 8 (privacy): outbound calls, emails and WhatsApp messages are
            // refused for do-not-disturb people; inbound ones are still logged. Empty means
            // outbound for those types.
            en("direction", "Direction", &[("outbound", "Outbound", "blue"), ("inbound", "Inbound", "teal")]).since(8),
        ],
    )
}

/// Default win probability for a deal stage, used when the caller gives none.
pub fn stage_probability(stage: &str) -> Option<i64> {
    Some(match stage {
        "prospecting" => 10,
        "qualification" => 20,
        "proposal" => 50,
        "negotiation" => 75,
        "closed_won" => 100,
        "closed_lost" => 0,
        _ => return None,
    })
}

/// Default forecast category for a deal stage.
pub fn stage_forecast(stage: &str) -> Option<&'static str> {
    Some(match stage {
        "prospecting" | "qualification" => "pipeline",
        "proposal" => "best_case",
        "negotiation" => "commit",
        "closed_won" => "closed",
        "closed_lost" => "omitted",
        _ => return None,
    })
}

/// Deal status follows its stage.
pub fn stage_status(stage: &str) -> &'static str {
    match stage {
        "closed_won" => "closed_won",
        "closed_lost" => "closed_lost",
        _ => "open",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_safe_identifiers() {
        let ident = regex::Regex::new("^[a-z][a-z0-9_]*$").expect("regex");
        for o in objects() {
            let mut seen = HashSet::new();
            for (c, _) in SYSTEM_COLUMNS {
                seen.insert(c.to_string());
            }
            for fd in &o.fields {
                assert!(ident.is_match(&fd.name), "{}.{}", o.name, fd.name);
                assert!(seen.insert(fd.name.clone()), "duplicate column {}.{}", o.name, fd.name);
                if let Some(d) = &fd.default {
                    if let Some(s) = d.as_str() {
                        if !fd.kind.options().is_empty() {
                            assert!(fd.is_enum_value(s), "bad default {}.{}", o.name, fd.name);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_stage_has_defaults() {
        for o in DEAL_STAGE {
            assert!(stage_probability(o.0).is_some());
            assert!(stage_forecast(o.0).is_some());
        }
    }
}
