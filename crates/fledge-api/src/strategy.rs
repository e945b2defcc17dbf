//! Which release strategy a canary's settings ask for.

use crate::canary::CanarySpec;

/// How traffic moves from the primary to the canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Progressive traffic shifting by weight (`stepWeight`/`maxWeight` or `stepWeights`).
    Canary,
    /// Requests that match headers or cookies go to the canary for `iterations` ticks.
    AbTesting,
    /// The canary is tested for `iterations` ticks, then all traffic switches at once.
    BlueGreen,
    /// Blue/green where the canary also receives a mirrored copy of live traffic.
    BlueGreenMirroring,
}

impl Strategy {
    /// Flagger's derivation: `match` with `iterations` is A/B testing, `iterations` alone is
    /// blue/green (with mirroring when `mirror` is set), anything else is a canary. The
    /// `kubernetes` provider cannot split traffic, so it always runs blue/green.
    pub fn of(spec: &CanarySpec, default_provider: Option<&str>) -> Self {
        let Some(analysis) = spec.analysis() else {
            return Self::Canary;
        };
        let iterations = analysis.iterations.unwrap_or(0) > 0;
        let plain_kubernetes = spec.effective_provider(default_provider) == "kubernetes";
        if iterations && !analysis.match_.is_empty() && !plain_kubernetes {
            Self::AbTesting
        } else if iterations || plain_kubernetes {
            if analysis.mirror && !plain_kubernetes {
                Self::BlueGreenMirroring
            } else {
                Self::BlueGreen
            }
        } else {
            Self::Canary
        }
    }

    /// Flagger's name for the strategy (`canary`, `ab-testing`, `blue-green`), as used in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::AbTesting => "ab-testing",
            Self::BlueGreen | Self::BlueGreenMirroring => "blue-green",
        }
    }

    /// Whether traffic is split by weight during the analysis.
    pub fn shifts_weight(self) -> bool {
        self == Self::Canary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    fn strategy(provider: &str, analysis: &str) -> Strategy {
        let text = format!(
            "targetRef: {{name: a}}\nservice: {{port: 80}}\nprovider: {provider}\nanalysis: {analysis}"
        );
        let spec: CanarySpec = yaml::from_str(&text).expect("valid");
        Strategy::of(&spec, None)
    }

    #[test]
    fn derives_each_strategy_like_flagger() {
        assert_eq!(strategy("istio", "{stepWeight: 10}"), Strategy::Canary);
        assert_eq!(
            strategy(
                "istio",
                "{iterations: 10, match: [{headers: {x: {exact: y}}}]}"
            ),
            Strategy::AbTesting
        );
        assert_eq!(strategy("istio", "{iterations: 10}"), Strategy::BlueGreen);
        assert_eq!(
            strategy("istio", "{iterations: 10, mirror: true}"),
            Strategy::BlueGreenMirroring
        );
    }

    #[test]
    fn the_kubernetes_provider_forces_blue_green() {
        assert_eq!(
            strategy("kubernetes", "{stepWeight: 10}"),
            Strategy::BlueGreen
        );
        assert_eq!(
            strategy("kubernetes", "{iterations: 3, mirror: true}"),
            Strategy::BlueGreen
        );
    }
}
