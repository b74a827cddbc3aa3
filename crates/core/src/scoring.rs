//! Lead scoring, pure.
//!
//! **Rules.** A rule set is a list of rules (conditions → points) combined with per-rule
//! weights: the score is Σ round(points × weight) over the rules that match, minus the
//! inactivity decay, clamped to 0–100 (the range of `lead_score`). Every score comes with its
//! explanation, one line per rule that gave points. Bands (Cold, Warm, Hot, Very Hot) are
//! thresholds on the score, configurable per rule set.
//!
//! **Predictive.** A logistic regression trained per company on its own converted (1) and lost
//! (0) leads over one-hot and numeric features. A deterministic stratified fifth of the leads
//! is held out to report AUC; the model is trained on the rest. Each prediction can be
//! explained by its largest feature contributions (weight × value).

use crate::rules::{self, count_events, Condition, EngagementKind, Event, Facts};
use crate::validate::FieldError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};

pub const MAX_RULES: usize = 100;
pub const MAX_POINTS: i64 = 100;
pub const MAX_WEIGHT: f64 = 10.0;
pub const MAX_SCORE: i64 = 100;

fn one() -> f64 {
    1.0
}

fn is_one(w: &f64) -> bool {
    *w == 1.0
}

/// One scoring rule: when every condition holds, the lead gets `points × weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRule {
    pub name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub points: i64,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: f64,
}

impl ScoreRule {
    /// What the rule adds when it matches.
    pub fn contribution(&self) -> i64 {
        (self.points as f64 * self.weight).round() as i64
    }
}

/// Lower bounds of the bands; below `warm` is Cold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    pub warm: i64,
    pub hot: i64,
    pub very_hot: i64,
}

impl Default for Bands {
    fn default() -> Self {
        // The product brief's bands: 0-30 Cold, 31-50 Warm, 51-70 Hot, 71-100 Very Hot.
        Bands { warm: 31, hot: 51, very_hot: 71 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    Cold,
    Warm,
    Hot,
    VeryHot,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Cold => "cold",
            Band::Warm => "warm",
            Band::Hot => "hot",
            Band::VeryHot => "very_hot",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Band::Cold => "Cold",
            Band::Warm => "Warm",
            Band::Hot => "Hot",
            Band::VeryHot => "Very Hot",
        }
    }
    /// Badge colour class.
    pub fn colour(self) -> &'static str {
        match self {
            Band::Cold => "blue",
            Band::Warm => "yellow",
            Band::Hot => "orange",
            Band::VeryHot => "red",
        }
    }
}

impl Bands {
    pub fn band(&self, score: i64) -> Band {
        if score >= self.very_hot {
            Band::VeryHot
        } else if score >= self.hot {
            Band::Hot
        } else if score >= self.warm {
            Band::Warm
        } else {
            Band::Cold
        }
    }

    fn validate(&self, errors: &mut Vec<FieldError>) {
        for (name, v) in [("warm", self.warm), ("hot", self.hot), ("very_hot", self.very_hot)] {
            if !(1..=MAX_SCORE).contains(&v) {
                errors.push(FieldError::new(format!("bands.{name}"), "must be from 1 to 100"));
            }
        }
        if self.hot <= self.warm {
            errors.push(FieldError::new("bands.hot", "must be above bands.warm"));
        }
        if self.very_hot <= self.hot {
            errors.push(FieldError::new("bands.very_hot", "must be above bands.hot"));
        }
    }
}

/// Points lost per full week without activity, after `grace_days` of quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decay {
    pub points_per_week: i64,
    #[serde(default)]
    pub grace_days: i64,
}

impl Decay {
    /// Points lost by a lead quiet since `since`.
    pub fn points(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> (i64, i64) {
        let idle_days = (now - since).num_days() - self.grace_days;
        let weeks = if idle_days > 0 { idle_days / 7 } else { 0 };
        (weeks, weeks.saturating_mul(self.points_per_week))
    }
}

/// What a rule set scores with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ScoringDef {
    pub rules: Vec<ScoreRule>,
    pub bands: Bands,
    pub decay: Option<Decay>,
}

/// One line of a score's explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub rule: String,
    pub points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scored {
    pub score: i64,
    pub band: Band,
    pub explanation: Vec<Contribution>,
}

impl Scored {
    pub fn explanation_json(&self) -> Json {
        serde_json::to_value(&self.explanation).unwrap_or(Json::Array(Vec::new()))
    }
}

/// The label of the decay line in explanations.
pub const DECAY_RULE: &str = "Inactivity decay";

impl ScoringDef {
    /// Scores a record: matching rules in order, then decay for quiet since `quiet_since` (the
    /// last activity, or creation when there was none).
    pub fn score(&self, facts: &Facts<'_>, quiet_since: DateTime<Utc>) -> Scored {
        let mut explanation: Vec<Contribution> = self
            .rules
            .iter()
            .filter(|r| rules::all_match(&r.conditions, facts))
            .map(|r| Contribution { rule: r.name.clone(), points: r.contribution() })
            .filter(|c| c.points != 0)
            .collect();
        if let Some(d) = &self.decay {
            let (weeks, lost) = d.points(quiet_since, facts.now);
            if lost > 0 {
                let s = if weeks == 1 { "" } else { "s" };
                explanation.push(Contribution { rule: format!("{DECAY_RULE} ({weeks} week{s} without activity)"), points: -lost });
            }
        }
        let total = explanation.iter().map(|c| c.points).fold(0i64, i64::saturating_add);
        let score = total.clamp(0, MAX_SCORE);
        Scored { score, band: self.bands.band(score), explanation }
    }

    /// Checks the definition, naming failures like `rules[2].conditions[0].op`.
    pub fn validate(&self, is_field: &dyn Fn(&str) -> bool) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.rules.len() > MAX_RULES {
            errors.push(FieldError::new("rules", format!("may have at most {MAX_RULES} rules")));
        }
        for (i, r) in self.rules.iter().enumerate().take(MAX_RULES) {
            if let Some(e) = rules::validate_name(&r.name, &format!("rules[{i}].name")) {
                errors.push(e);
            }
            if !(-MAX_POINTS..=MAX_POINTS).contains(&r.points) {
                errors.push(FieldError::new(format!("rules[{i}].points"), "must be from -100 to 100"));
            }
            if !(r.weight.is_finite() && (0.0..=MAX_WEIGHT).contains(&r.weight)) {
                errors.push(FieldError::new(format!("rules[{i}].weight"), "must be from 0 to 10"));
            }
            errors.extend(rules::validate_conditions(&r.conditions, &format!("rules[{i}].conditions"), is_field));
        }
        self.bands.validate(&mut errors);
        if let Some(d) = &self.decay {
            if !(0..=MAX_POINTS).contains(&d.points_per_week) {
                errors.push(FieldError::new("decay.points_per_week", "must be from 0 to 100"));
            }
            if !(0..=365).contains(&d.grace_days) {
                errors.push(FieldError::new("decay.grace_days", "must be from 0 to 365"));
            }
        }
        errors
    }
}

// ---------------------------------------------------------------------------------------
// Predictive score
// ---------------------------------------------------------------------------------------

/// Fewer examples than this in either class and the company falls back to rule scores.
pub const MIN_PER_CLASS: usize = 50;
/// A feature is kept when at least this many training leads have it.
const MIN_FEATURE_COUNT: usize = 3;
const ITERATIONS: usize = 600;
const LEARNING_RATE: f64 = 0.8;
const L2: f64 = 0.002;

/// Words in job titles that tell seniority or role.
pub const TITLE_KEYWORDS: &[&str] = &[
    "ceo",
    "cto",
    "cfo",
    "coo",
    "cio",
    "founder",
    "owner",
    "president",
    "partner",
    "vp",
    "director",
    "head",
    "chief",
    "manager",
    "lead",
    "engineer",
    "developer",
    "analyst",
    "consultant",
    "executive",
    "assistant",
    "intern",
    "student",
];

/// Company size buckets (employees).
pub fn size_bucket(n: Option<i64>) -> &'static str {
    match n {
        None => "unknown",
        Some(n) if n <= 10 => "1-10",
        Some(n) if n <= 50 => "11-50",
        Some(n) if n <= 200 => "51-200",
        Some(n) if n <= 1000 => "201-1000",
        Some(_) => "1000+",
    }
}

fn text<'a>(fields: &'a Map<String, Json>, name: &str) -> Option<&'a str> {
    fields.get(name).and_then(Json::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// The features of a lead, by name. Counts are squashed to 0–1 (log scale, 20 events = 1).
pub fn lead_features(fields: &Map<String, Json>, events: &[Event], now: DateTime<Utc>) -> BTreeMap<String, f64> {
    let mut f = BTreeMap::new();
    if let Some(s) = text(fields, "source") {
        f.insert(format!("source={}", s.to_lowercase()), 1.0);
    }
    if let Some(c) = text(fields, "country") {
        f.insert(format!("country={}", c.to_uppercase()), 1.0);
    }
    if let Some(a) = text(fields, "authority_level") {
        f.insert(format!("authority={}", a.to_lowercase()), 1.0);
    }
    for (name, field) in
        [("has_email", "email"), ("has_phone", "phone"), ("has_company", "company_name"), ("has_product", "interest_product")]
    {
        if text(fields, field).is_some() {
            f.insert(name.to_string(), 1.0);
        }
    }
    if let Some(t) = text(fields, "job_title") {
        let lower = t.to_lowercase();
        let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
        for kw in TITLE_KEYWORDS {
            if words.contains(kw) {
                f.insert(format!("title~{kw}"), 1.0);
            }
        }
    }
    f.insert(format!("size={}", size_bucket(fields.get("company_size").and_then(Json::as_i64))), 1.0);
    for kind in EngagementKind::ALL {
        let n = count_events(events, kind, None, now);
        if n > 0 {
            f.insert(format!("eng:{}", kind.as_str()), ((1.0 + n as f64).ln() / 21f64.ln()).min(1.0));
        }
    }
    for part in ["budget", "authority", "need", "timeline"] {
        if let Some(v) = fields.get(&format!("bant_{part}_score")).and_then(Json::as_i64) {
            f.insert(format!("bant:{part}"), (v as f64 / 10.0).clamp(0.0, 1.0));
        }
    }
    f
}

/// A feature name as people read it.
pub fn feature_label(name: &str) -> String {
    if let Some(v) = name.strip_prefix("source=") {
        return format!("Source: {}", v.replace('_', " "));
    }
    if let Some(v) = name.strip_prefix("country=") {
        return format!("Country: {v}");
    }
    if let Some(v) = name.strip_prefix("authority=") {
        return format!("Authority: {}", v.replace('_', " "));
    }
    if let Some(v) = name.strip_prefix("title~") {
        return format!("Job title mentions \"{v}\"");
    }
    if let Some(v) = name.strip_prefix("size=") {
        return format!("Company size: {v}");
    }
    if let Some(v) = name.strip_prefix("eng:") {
        return EngagementKind::parse(v).map_or_else(|| v.to_string(), |k| k.label().to_string());
    }
    if let Some(v) = name.strip_prefix("bant:") {
        return format!("BANT {v} score");
    }
    match name {
        "has_email" => "Has an email address".into(),
        "has_phone" => "Has a phone number".into(),
        "has_company" => "Has a company name".into(),
        "has_product" => "Named a product of interest".into(),
        other => other.to_string(),
    }
}

/// A trained logistic regression over named features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub features: Vec<String>,
    pub weights: Vec<f64>,
    pub bias: f64,
}

/// One feature's push on a prediction (log-odds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureContribution {
    pub feature: String,
    pub label: String,
    pub contribution: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Model {
    pub fn probability(&self, x: &BTreeMap<String, f64>) -> f64 {
        let z = self.bias + self.features.iter().zip(&self.weights).map(|(n, w)| w * x.get(n).copied().unwrap_or(0.0)).sum::<f64>();
        sigmoid(z)
    }

    /// The probability as a 0–100 score.
    pub fn score(&self, x: &BTreeMap<String, f64>) -> i64 {
        (self.probability(x) * 100.0).round().clamp(0.0, 100.0) as i64
    }

    /// The `top` features that moved this prediction most, strongest first.
    pub fn contributions(&self, x: &BTreeMap<String, f64>, top: usize) -> Vec<FeatureContribution> {
        let mut out: Vec<FeatureContribution> = self
            .features
            .iter()
            .zip(&self.weights)
            .filter_map(|(n, w)| {
                let v = x.get(n).copied().unwrap_or(0.0);
                let c = w * v;
                (c.abs() > 1e-9).then(|| FeatureContribution {
                    feature: n.clone(),
                    label: feature_label(n),
                    contribution: (c * 1000.0).round() / 1000.0,
                })
            })
            .collect();
        out.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()).then_with(|| a.feature.cmp(&b.feature)));
        out.truncate(top);
        out
    }
}

/// A labelled lead: `key` (its id) orders the deterministic split.
#[derive(Debug, Clone)]
pub struct Example {
    pub key: String,
    pub features: BTreeMap<String, f64>,
    pub label: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trained {
    pub model: Model,
    /// Area under the ROC curve on the held-out leads.
    pub auc: Option<f64>,
    pub train_count: usize,
    pub test_count: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TrainOutcome {
    Trained(Trained),
    /// Too little history: rule scores stay the only scores.
    NotEnough {
        positives: usize,
        negatives: usize,
    },
}

/// Area under the ROC curve (Mann-Whitney U with ties counted half). `None` without both
/// classes.
pub fn auc(scored: &[(f64, bool)]) -> Option<f64> {
    let mut v: Vec<(f64, bool)> = scored.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (pos, neg) = (v.iter().filter(|x| x.1).count(), v.iter().filter(|x| !x.1).count());
    if pos == 0 || neg == 0 {
        return None;
    }
    // Average ranks over ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1].0 == v[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += v[i..=j].iter().filter(|x| x.1).count() as f64 * avg_rank;
        i = j + 1;
    }
    let u = rank_sum_pos - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos as f64 * neg as f64))
}

/// Splits deterministically: in each class, ordered by key, every fifth example is held out.
fn split(examples: &[Example]) -> (Vec<&Example>, Vec<&Example>) {
    let mut train = Vec::new();
    let mut test = Vec::new();
    for label in [true, false] {
        let mut class: Vec<&Example> = examples.iter().filter(|e| e.label == label).collect();
        class.sort_by(|a, b| a.key.cmp(&b.key));
        for (i, e) in class.into_iter().enumerate() {
            if i % 5 == 4 {
                test.push(e);
            } else {
                train.push(e);
            }
        }
    }
    (train, test)
}

/// Full-batch gradient descent on the L2-regularised log loss. Features are 0–1, so no scaling
/// is needed; the fixed schedule makes training deterministic.
fn fit(train: &[&Example]) -> Model {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in train {
        for (k, v) in &e.features {
            if *v != 0.0 {
                *counts.entry(k.as_str()).or_default() += 1;
            }
        }
    }
    let features: Vec<String> = counts.into_iter().filter(|(_, n)| *n >= MIN_FEATURE_COUNT).map(|(k, _)| k.to_string()).collect();
    let index: HashMap<&str, usize> = features.iter().enumerate().map(|(i, f)| (f.as_str(), i)).collect();
    let rows: Vec<(Vec<(usize, f64)>, f64)> = train
        .iter()
        .map(|e| {
            let x = e.features.iter().filter_map(|(k, v)| index.get(k.as_str()).map(|i| (*i, *v))).collect();
            (x, if e.label { 1.0 } else { 0.0 })
        })
        .collect();
    let n = rows.len().max(1) as f64;
    let mut w = vec![0.0; features.len()];
    let mut b = 0.0;
    let mut grad = vec![0.0; features.len()];
    for _ in 0..ITERATIONS {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut gb = 0.0;
        for (x, y) in &rows {
            let z = b + x.iter().map(|(i, v)| w[*i] * v).sum::<f64>();
            let err = sigmoid(z) - y;
            gb += err;
            for (i, v) in x {
                grad[*i] += err * v;
            }
        }
        for (wi, gi) in w.iter_mut().zip(&grad) {
            *wi -= LEARNING_RATE * (gi / n + L2 * *wi);
        }
        b -= LEARNING_RATE * gb / n;
    }
    Model { features, weights: w.into_iter().map(|x| (x * 1e6).round() / 1e6).collect(), bias: (b * 1e6).round() / 1e6 }
}

/// Trains on four fifths of the examples and reports AUC on the rest; too few examples of
/// either class is [`TrainOutcome::NotEnough`].
pub fn train(examples: &[Example]) -> TrainOutcome {
    let positives = examples.iter().filter(|e| e.label).count();
    let negatives = examples.len() - positives;
    if positives < MIN_PER_CLASS || negatives < MIN_PER_CLASS {
        return TrainOutcome::NotEnough { positives, negatives };
    }
    let (train, test) = split(examples);
    let model = fit(&train);
    let scored: Vec<(f64, bool)> = test.iter().map(|e| (model.probability(&e.features), e.label)).collect();
    TrainOutcome::Trained(Trained {
        auc: auc(&scored).map(|a| (a * 10_000.0).round() / 10_000.0),
        train_count: train.len(),
        test_count: test.len(),
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Op;
    use chrono::{Duration, TimeZone};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().expect("time")
    }

    fn def() -> ScoringDef {
        ScoringDef {
            rules: vec![
                ScoreRule {
                    name: "India".into(),
                    conditions: vec![Condition::field("country", Op::Eq, json!("IN"))],
                    points: 20,
                    weight: 1.0,
                },
                ScoreRule {
                    name: "Big company".into(),
                    conditions: vec![Condition::field("company_size", Op::Gte, json!(200))],
                    points: 20,
                    weight: 1.5,
                },
                ScoreRule {
                    name: "Opened emails".into(),
                    conditions: vec![Condition::engagement(EngagementKind::EmailOpened, Op::Gte, 2, Some(30))],
                    points: 25,
                    weight: 1.0,
                },
                ScoreRule {
                    name: "Student".into(),
                    conditions: vec![Condition::field("job_title", Op::Contains, json!("student"))],
                    points: -30,
                    weight: 1.0,
                },
            ],
            bands: Bands::default(),
            decay: Some(Decay { points_per_week: 5, grace_days: 0 }),
        }
    }

    #[test]
    fn rules_weights_explanation_and_bands() {
        let d = def();
        let fields = json!({"country": "IN", "company_size": 500}).as_object().cloned().expect("map");
        let ev = vec![
            Event { kind: EngagementKind::EmailOpened, at: now() - Duration::days(1) },
            Event { kind: EngagementKind::EmailOpened, at: now() - Duration::days(3) },
        ];
        let s = d.score(&Facts { fields: &fields, events: &ev, now: now() }, now() - Duration::days(1));
        assert_eq!(s.score, 75);
        assert_eq!(s.band, Band::VeryHot);
        assert_eq!(
            s.explanation,
            vec![
                Contribution { rule: "India".into(), points: 20 },
                Contribution { rule: "Big company".into(), points: 30 },
                Contribution { rule: "Opened emails".into(), points: 25 }
            ]
        );
        // Three quiet weeks cost 15 points, and the line says so.
        let s = d.score(&Facts { fields: &fields, events: &[], now: now() }, now() - Duration::days(22));
        assert_eq!(s.score, 35);
        assert_eq!(s.explanation.last().map(|c| c.points), Some(-15));
        assert!(s.explanation.last().is_some_and(|c| c.rule.starts_with(DECAY_RULE)));
        // Never below zero or above 100.
        let student = json!({"job_title": "Student"}).as_object().cloned().expect("map");
        assert_eq!(d.score(&Facts { fields: &student, events: &[], now: now() }, now()).score, 0);
    }

    #[test]
    fn bands_are_configurable() {
        let b = Bands::default();
        assert_eq!(
            [b.band(0), b.band(30), b.band(31), b.band(50), b.band(51), b.band(70), b.band(71)],
            [Band::Cold, Band::Cold, Band::Warm, Band::Warm, Band::Hot, Band::Hot, Band::VeryHot]
        );
        let custom = Bands { warm: 20, hot: 50, very_hot: 80 };
        assert_eq!(custom.band(55), Band::Hot);
    }

    #[test]
    fn decay_after_grace() {
        let d = Decay { points_per_week: 4, grace_days: 7 };
        assert_eq!(d.points(now() - Duration::days(13), now()), (0, 0));
        assert_eq!(d.points(now() - Duration::days(14), now()), (1, 4));
        assert_eq!(d.points(now() - Duration::days(35), now()), (4, 16));
    }

    #[test]
    fn validation_names_fields() {
        let mut d = def();
        d.rules[0].points = 500;
        d.rules[1].weight = -1.0;
        d.rules[2].name = " ".into();
        d.bands = Bands { warm: 50, hot: 40, very_hot: 101 };
        d.decay = Some(Decay { points_per_week: -1, grace_days: 1000 });
        let errs = d.validate(&|f| matches!(f, "country" | "company_size" | "job_title"));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "rules[0].points",
            "rules[1].weight",
            "rules[2].name",
            "bands.hot",
            "bands.very_hot",
            "decay.points_per_week",
            "decay.grace_days",
        ] {
            assert!(fields.contains(&f), "{f} not in {fields:?}");
        }
        assert!(def().validate(&|_| true).is_empty());
    }

    #[test]
    fn auc_counts_ties_half() {
        assert_eq!(auc(&[(0.9, true), (0.1, false)]), Some(1.0));
        assert_eq!(auc(&[(0.1, true), (0.9, false)]), Some(0.0));
        assert_eq!(auc(&[(0.5, true), (0.5, false)]), Some(0.5));
        assert_eq!(auc(&[(0.5, true)]), None);
    }

    /// A synthetic company: referrals from big companies with senior titles convert; paid-ads
    /// students do not; one lead in six is labelled against the pattern.
    fn synthetic(n: usize) -> Vec<Example> {
        (0..n)
            .map(|i| {
                let good = i.is_multiple_of(2);
                let label = if i % 6 == 5 { !good } else { good };
                let fields = if good {
                    json!({"source": "referral", "job_title": "Director of IT", "company_size": 300, "email": "a@b.in", "bant_budget_score": 8})
                } else {
                    json!({"source": "paid_ads", "job_title": "Student", "company_size": 5, "bant_budget_score": 2})
                };
                let fields = fields.as_object().cloned().expect("map");
                Example { key: format!("{i:06}"), features: lead_features(&fields, &[], now()), label }
            })
            .collect()
    }

    #[test]
    fn logistic_regression_learns_and_explains() {
        let TrainOutcome::Trained(t) = train(&synthetic(300)) else { panic!("should train") };
        assert!(t.auc.is_some_and(|a| a > 0.7), "auc {:?}", t.auc);
        assert_eq!(t.train_count + t.test_count, 300);
        assert_eq!(t.test_count, 60);
        let good = json!({"source": "referral", "job_title": "Director", "company_size": 300}).as_object().cloned().expect("map");
        let bad = json!({"source": "paid_ads", "job_title": "Student", "company_size": 5}).as_object().cloned().expect("map");
        let (g, b) = (lead_features(&good, &[], now()), lead_features(&bad, &[], now()));
        assert!(t.model.probability(&g) > 0.6 && t.model.probability(&b) < 0.4);
        let top = t.model.contributions(&g, 3);
        assert_eq!(top.len(), 3);
        assert!(top.iter().all(|c| c.contribution > 0.0), "{top:?}");
        // Deterministic: the same data trains the same model.
        let TrainOutcome::Trained(again) = train(&synthetic(300)) else { panic!("should train") };
        assert_eq!(again.model, t.model);
    }

    #[test]
    fn too_little_history_falls_back() {
        assert_eq!(train(&synthetic(60)), TrainOutcome::NotEnough { positives: 40, negatives: 20 });
    }

    #[test]
    fn features_of_a_lead() {
        let fields = json!({"source": "Website", "country": "in", "job_title": "VP, Sales & Head-of Growth", "company_size": 42, "phone": "+911234567890", "bant_need_score": 5})
            .as_object()
            .cloned()
            .expect("map");
        let ev = vec![Event { kind: EngagementKind::FormSubmitted, at: now() - Duration::days(1) }];
        let f = lead_features(&fields, &ev, now());
        for k in ["source=website", "country=IN", "title~vp", "title~head", "size=11-50", "has_phone", "eng:form_submitted", "bant:need"] {
            assert!(f.contains_key(k), "{k} missing in {f:?}");
        }
        assert_eq!(f["bant:need"], 0.5);
        assert!(!f.contains_key("has_email"));
        assert_eq!(feature_label("title~vp"), "Job title mentions \"vp\"");
    }
}
