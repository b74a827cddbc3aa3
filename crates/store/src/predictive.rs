//! The predictive lead score: training on a company's own converted and lost leads (a job,
//! on demand and weekly), the stored model with its AUC, and per-lead explanations.
//!
//! A converted lead is a positive example; a disqualified or unqualified one is a negative.
//! With fewer than [`MIN_PER_CLASS`] of either, the company falls back to rule scores: the
//! status says so and leads carry no predictive score.

use crate::audit::{self, AuditCtx, Change};
use crate::db::{Db, Row, Tx, Q};
use crate::scoring::{self, Conn};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use corvid_core::rules::Event;
use corvid_core::scoring::{lead_features, train as fit, FeatureContribution, Model, TrainOutcome, MIN_PER_CLASS};
use corvid_core::value::now_micros;
use corvid_core::{SqlType, Value};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use uuid::Uuid;

pub const TRAIN_JOB: &str = "scoring.predictive.train";
/// Statuses that label a lead: converted is a win, these are losses.
const WON: &str = "converted";
const LOST: &[&str] = &["disqualified", "unqualified"];
/// Most examples one training run reads (the newest are kept beyond it).
const MAX_EXAMPLES: usize = 200_000;
const PAGE: usize = 500;

#[derive(Debug, Clone, Serialize)]
pub struct FeatureWeight {
    pub feature: String,
    pub label: String,
    pub weight: f64,
}

/// What `GET .../scoring/predictive` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    /// `not_trained`, `trained` or `fallback` (too little history).
    pub status: String,
    /// Which score leads get: `predictive` or `rules`.
    pub using: &'static str,
    pub message: String,
    pub auc: Option<f64>,
    pub positives: i64,
    pub negatives: i64,
    pub train_count: i64,
    pub test_count: i64,
    pub min_per_class: usize,
    pub trained_at: Option<DateTime<Utc>>,
    pub trained_by: Option<Uuid>,
    pub job_id: Option<Uuid>,
    /// The strongest weights of the model, positive and negative.
    pub top_features: Vec<FeatureWeight>,
}

const COLS: &str = "status, model, auc, positives, negatives, train_count, test_count, message, trained_at, trained_by, job_id";
const TYPES: &[SqlType] = &[
    SqlType::Text,
    SqlType::Json,
    SqlType::Float,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Timestamp,
    SqlType::Uuid,
    SqlType::Uuid,
];

fn select(company_id: Uuid) -> Q {
    Q::new(format!("SELECT {COLS} FROM predictive_models WHERE company_id = $1 AND object = $2"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Text("leads".into()))
}

fn model_of(r: &Row) -> Result<Option<Model>> {
    if r.text(0).as_deref() != Some("trained") {
        return Ok(None);
    }
    match r.json(1) {
        None | Some(Json::Null) => Ok(None),
        Some(j) => serde_json::from_value(j).map(Some).map_err(|e| StoreError::Corrupt(format!("predictive model: {e}"))),
    }
}

fn top_weights(m: &Model, n: usize) -> Vec<FeatureWeight> {
    let mut w: Vec<FeatureWeight> = m
        .features
        .iter()
        .zip(&m.weights)
        .map(|(f, w)| FeatureWeight {
            feature: f.clone(),
            label: corvid_core::scoring::feature_label(f),
            weight: (w * 1000.0).round() / 1000.0,
        })
        .collect();
    w.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()).then_with(|| a.feature.cmp(&b.feature)));
    w.truncate(n);
    w
}

fn status_from(r: Option<&Row>) -> Result<ModelStatus> {
    let Some(r) = r else {
        return Ok(ModelStatus {
            status: "not_trained".into(),
            using: "rules",
            message: format!(
                "No predictive model yet. Train one once there are at least {MIN_PER_CLASS} converted and {MIN_PER_CLASS} lost (disqualified or unqualified) leads; until then leads are scored by rules."
            ),
            auc: None,
            positives: 0,
            negatives: 0,
            train_count: 0,
            test_count: 0,
            min_per_class: MIN_PER_CLASS,
            trained_at: None,
            trained_by: None,
            job_id: None,
            top_features: Vec::new(),
        });
    };
    let model = model_of(r)?;
    Ok(ModelStatus {
        status: r.text(0).unwrap_or_default(),
        using: if model.is_some() { "predictive" } else { "rules" },
        message: r.text(7).unwrap_or_default(),
        auc: r.float(2),
        positives: r.int(3).unwrap_or(0),
        negatives: r.int(4).unwrap_or(0),
        train_count: r.int(5).unwrap_or(0),
        test_count: r.int(6).unwrap_or(0),
        min_per_class: MIN_PER_CLASS,
        trained_at: r.timestamp(8),
        trained_by: r.uuid(9),
        job_id: r.uuid(10),
        top_features: model.as_ref().map(|m| top_weights(m, 10)).unwrap_or_default(),
    })
}

pub async fn status(db: &Db, company_id: Uuid) -> Result<ModelStatus> {
    status_from(db.fetch_one(&select(company_id), TYPES).await?.as_ref())
}

/// The trained model scoring new leads, if the company has one.
pub async fn active_model(tx: &mut Tx, company_id: Uuid) -> Result<Option<Model>> {
    tx.fetch_one(&select(company_id), TYPES).await?.as_ref().map(model_of).transpose().map(Option::flatten)
}

pub async fn model_db(db: &Db, company_id: Uuid) -> Result<Option<Model>> {
    db.fetch_one(&select(company_id), TYPES).await?.as_ref().map(model_of).transpose().map(Option::flatten)
}

/// One lead's predictive score and why.
#[derive(Debug, Clone, Serialize)]
pub struct LeadPrediction {
    /// `predictive` when a model scores the lead, `rules` when the company falls back.
    pub using: &'static str,
    pub score: Option<i64>,
    pub probability: Option<f64>,
    pub top_features: Vec<FeatureContribution>,
    pub message: Option<String>,
}

pub fn explain(model: Option<&Model>, facts: &Map<String, Json>, events: &[Event], stored: Option<i64>) -> LeadPrediction {
    match model {
        Some(m) => {
            let x = lead_features(facts, events, now_micros());
            let p = m.probability(&x);
            LeadPrediction {
                using: "predictive",
                score: stored.or(Some(m.score(&x))),
                probability: Some((p * 10_000.0).round() / 10_000.0),
                top_features: m.contributions(&x, 5),
                message: None,
            }
        }
        None => LeadPrediction {
            using: "rules",
            score: None,
            probability: None,
            top_features: Vec::new(),
            message: Some(
                "No predictive model is trained for this company (too little history or not trained yet); the rule score applies.".into(),
            ),
        },
    }
}

fn labelled_where() -> String {
    let lost: Vec<String> = LOST.iter().map(|s| format!("'{s}'")).collect();
    format!(" AND status IN ('{WON}', {})", lost.join(", "))
}

/// Converted and lost leads of a company.
pub async fn labelled_counts(db: &Db, company_id: Uuid) -> Result<(i64, i64)> {
    let q = Q::new(format!(
        "SELECT status, COUNT(*) FROM leads WHERE company_id = $1 AND deleted_at IS NULL{} GROUP BY status",
        labelled_where()
    ))
    .bind(Value::Uuid(company_id));
    let (mut pos, mut neg) = (0, 0);
    for r in db.fetch(&q, &[SqlType::Text, SqlType::Int]).await? {
        let n = r.int(1).unwrap_or(0);
        if r.text(0).as_deref() == Some(WON) {
            pos += n;
        } else {
            neg += n;
        }
    }
    Ok((pos, neg))
}

/// Companies the weekly retraining visits: those with a model row already, or with enough
/// labelled leads for a first one.
pub async fn companies_to_train(db: &Db) -> Result<Vec<Uuid>> {
    let mut out: Vec<Uuid> =
        db.fetch(&Q::new("SELECT company_id FROM predictive_models"), &[SqlType::Uuid]).await?.iter().filter_map(|r| r.uuid(0)).collect();
    for c in crate::companies::all_ids(db).await? {
        if out.contains(&c) {
            continue;
        }
        let (p, n) = labelled_counts(db, c).await?;
        if p >= MIN_PER_CLASS as i64 && n >= MIN_PER_CLASS as i64 {
            out.push(c);
        }
    }
    Ok(out)
}

/// Trains the company's model (or records the fallback), stores it, audits it and rescores
/// every lead's predictive score. `on_progress` gets a phase message.
pub async fn train(db: &Db, ctx: &AuditCtx, job_id: Option<Uuid>, on_progress: &(dyn Fn(&str) + Send + Sync)) -> Result<ModelStatus> {
    let company_id = ctx.company_id;
    on_progress("reading converted and lost leads");
    let mut examples = Vec::new();
    let mut after = None;
    let filter = labelled_where();
    while examples.len() < MAX_EXAMPLES {
        let page = scoring::lead_page(Conn::Db(db), company_id, after, &filter, PAGE).await?;
        let Some(last) = page.last().map(|l| l.id) else { break };
        let ids: Vec<Uuid> = page.iter().map(|l| l.id).collect();
        let mut events = scoring::events_of(Conn::Db(db), company_id, &ids).await?;
        let now = now_micros();
        for lead in &page {
            let ev = events.remove(&lead.id).unwrap_or_default();
            let label = lead.fields.get("status").and_then(Value::as_str) == Some(WON);
            examples.push(corvid_core::scoring::Example {
                key: lead.id.to_string(),
                features: lead_features(&lead.facts(), &ev, now),
                label,
            });
        }
        after = Some(last);
        if page.len() < PAGE {
            break;
        }
    }
    let positives = examples.iter().filter(|e| e.label).count() as i64;
    let negatives = examples.len() as i64 - positives;
    on_progress("training");
    let outcome = tokio::task::spawn_blocking(move || fit(&examples)).await.map_err(|_| StoreError::Config("training stopped".into()))?;
    let now = now_micros();
    let (status, model, auc, train_n, test_n, message) = match &outcome {
        TrainOutcome::Trained(t) => (
            "trained",
            Some(t.model.clone()),
            t.auc,
            t.train_count,
            t.test_count,
            format!(
                "Trained on {} leads ({positives} converted, {negatives} lost) over {} features; AUC {} on {} held-out leads.",
                t.train_count,
                t.model.features.len(),
                t.auc.map_or("n/a".into(), |a| format!("{a:.3}")),
                t.test_count
            ),
        ),
        TrainOutcome::NotEnough { .. } => (
            "fallback",
            None,
            None,
            0,
            0,
            format!(
                "Not enough history: {positives} converted and {negatives} lost leads; at least {MIN_PER_CLASS} of each are needed. Leads are scored by rules until then."
            ),
        ),
    };
    let (pos, neg) = (positives, negatives);
    let model_json = match &model {
        Some(m) => Value::Json(serde_json::to_value(m).map_err(|e| StoreError::Config(e.to_string()))?),
        None => Value::Null(SqlType::Json),
    };
    let mut tx = db.begin().await?;
    let old = tx.fetch_one(&select(company_id), TYPES).await?;
    let q = Q::new(format!(
        "INSERT INTO predictive_models (company_id, object, {COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (company_id, object) DO UPDATE SET status = excluded.status, model = excluded.model, auc = excluded.auc, \
         positives = excluded.positives, negatives = excluded.negatives, train_count = excluded.train_count, test_count = excluded.test_count, \
         message = excluded.message, trained_at = excluded.trained_at, trained_by = excluded.trained_by, job_id = excluded.job_id"
    ))
    .bind(Value::Uuid(company_id))
    .bind(Value::Text("leads".into()))
    .bind(Value::Text(status.into()))
    .bind(model_json)
    .bind(auc.map_or(Value::Null(SqlType::Float), Value::Float))
    .bind(Value::Int(pos))
    .bind(Value::Int(neg))
    .bind(Value::Int(train_n as i64))
    .bind(Value::Int(test_n as i64))
    .bind(Value::Text(message.clone()))
    .bind(Value::Timestamp(now))
    .bind(ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
    .bind(job_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid));
    tx.execute(&q).await?;
    let old_text =
        old.as_ref().map(|r| format!("{} auc={}", r.text(0).unwrap_or_default(), r.float(2).map_or("n/a".into(), |a| format!("{a:.4}"))));
    let new_text = format!("{status} auc={}", auc.map_or("n/a".into(), |a| format!("{a:.4}")));
    audit::append(
        &mut tx,
        ctx,
        &[Change {
            object: "predictive_model".into(),
            record_id: None,
            action: "train".into(),
            field: Some("leads".into()),
            old: old_text,
            new: Some(new_text),
        }],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(company = %company_id, status, auc = ?auc, positives = pos, negatives = neg, "predictive model trained");
    on_progress("rescoring leads");
    scoring::rescore_company(db, ctx, &format!("predictive model {status}"), &|_| {}).await?;
    self::status(db, company_id).await
}
