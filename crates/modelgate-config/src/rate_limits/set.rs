//! One set of limits, with the same keys as written (`RawLimitSet`), as
//! validated (`LimitSet`) and as read from claims (`ClaimLimits`): the list
//! of limit names lives here once.

use serde::Deserialize;

/// One value per limit, named as in config: request and token numbers as
/// `N`, spend budgets as `B`. Written ([`RawLimitSet`]), validated
/// ([`LimitSet`]) and read from claims ([`ClaimLimits`]) with the same keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits<N, B = N> {
    /// Requests per second.
    pub rps: Option<N>,
    /// Requests per minute.
    pub rpm: Option<N>,
    /// Total (input + output) tokens per minute.
    pub tpm: Option<N>,
    /// Total tokens per day (UTC).
    pub tpd: Option<N>,
    pub input_tpm: Option<N>,
    pub output_tpm: Option<N>,
    /// Requests running at once.
    pub max_concurrent: Option<N>,
    /// Spend per UTC day (USD as written, micro-USD once validated).
    pub budget_daily: Option<B>,
    /// Spend per calendar month (UTC).
    pub budget_monthly: Option<B>,
    /// Spend ever.
    pub budget_total: Option<B>,
}

/// One set of limits as written (every key optional: absent = no limit);
/// budgets in USD.
pub type RawLimitSet = Limits<u64, f64>;

/// One validated set of limits; `None` = no limit of that kind; budgets in
/// micro-USD.
pub type LimitSet = Limits<u64>;

/// `limits.claim_limits`: for each limit, the claim whose number replaces
/// `per_subject`'s value for that identity (budgets in USD).
pub type ClaimLimits = Limits<String>;

impl<N, B> Limits<N, B> {
    /// Each limit set here converted by `number` or `budget`, given `cx`
    /// and its name; `None` from them leaves it unset.
    pub fn map<C, N2, B2>(
        self,
        cx: &mut C,
        number: impl Fn(&mut C, &'static str, N) -> Option<N2>,
        budget: impl Fn(&mut C, &'static str, B) -> Option<B2>,
    ) -> Limits<N2, B2> {
        let mut n = |name, v: Option<N>| v.and_then(|v| number(cx, name, v));
        Limits {
            rps: n("rps", self.rps),
            rpm: n("rpm", self.rpm),
            tpm: n("tpm", self.tpm),
            tpd: n("tpd", self.tpd),
            input_tpm: n("input_tpm", self.input_tpm),
            output_tpm: n("output_tpm", self.output_tpm),
            max_concurrent: n("max_concurrent", self.max_concurrent),
            budget_daily: self
                .budget_daily
                .and_then(|v| budget(cx, "budget_daily", v)),
            budget_monthly: self
                .budget_monthly
                .and_then(|v| budget(cx, "budget_monthly", v)),
            budget_total: self
                .budget_total
                .and_then(|v| budget(cx, "budget_total", v)),
        }
    }
}

impl<T> Limits<T> {
    /// Every limit with its name, in config order.
    pub fn fields(&self) -> [(&'static str, &Option<T>); 10] {
        [
            ("rps", &self.rps),
            ("rpm", &self.rpm),
            ("tpm", &self.tpm),
            ("tpd", &self.tpd),
            ("input_tpm", &self.input_tpm),
            ("output_tpm", &self.output_tpm),
            ("max_concurrent", &self.max_concurrent),
            ("budget_daily", &self.budget_daily),
            ("budget_monthly", &self.budget_monthly),
            ("budget_total", &self.budget_total),
        ]
    }

    /// Every limit with its name, in config order, to change.
    pub fn fields_mut(&mut self) -> [(&'static str, &mut Option<T>); 10] {
        [
            ("rps", &mut self.rps),
            ("rpm", &mut self.rpm),
            ("tpm", &mut self.tpm),
            ("tpd", &mut self.tpd),
            ("input_tpm", &mut self.input_tpm),
            ("output_tpm", &mut self.output_tpm),
            ("max_concurrent", &mut self.max_concurrent),
            ("budget_daily", &mut self.budget_daily),
            ("budget_monthly", &mut self.budget_monthly),
            ("budget_total", &mut self.budget_total),
        ]
    }

    /// The limit named as in config (`tpm`, `budget_daily`, …).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Option<T>> {
        self.fields_mut()
            .into_iter()
            .find_map(|(n, v)| (n == name).then_some(v))
    }
}

impl ClaimLimits {
    /// `(limit name, claim)` for every limit taken from a claim.
    pub fn entries(&self) -> Vec<(&'static str, &str)> {
        self.fields()
            .into_iter()
            .filter_map(|(n, c)| c.as_deref().map(|c| (n, c)))
            .collect()
    }
}

impl LimitSet {
    pub fn is_empty(&self) -> bool {
        *self == LimitSet::default()
    }

    /// Each limit set here, else `base`'s.
    pub fn or(&self, base: &LimitSet) -> LimitSet {
        LimitSet {
            rps: self.rps.or(base.rps),
            rpm: self.rpm.or(base.rpm),
            tpm: self.tpm.or(base.tpm),
            tpd: self.tpd.or(base.tpd),
            input_tpm: self.input_tpm.or(base.input_tpm),
            output_tpm: self.output_tpm.or(base.output_tpm),
            max_concurrent: self.max_concurrent.or(base.max_concurrent),
            budget_daily: self.budget_daily.or(base.budget_daily),
            budget_monthly: self.budget_monthly.or(base.budget_monthly),
            budget_total: self.budget_total.or(base.budget_total),
        }
    }
}
