//! Go's `printf` as a template helper, for templates such as Flagger's Skipper route pattern:
//! `{{ printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}`.

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use serde_json::Value;

/// Formats its first parameter with the others, knowing the verbs `%s`, `%v`, `%d` and `%%`.
pub(super) fn printf(
    helper: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let mut params = helper.params().iter();
    let format = params
        .next()
        .and_then(|param| param.value().as_str().map(str::to_owned))
        .ok_or_else(|| {
            RenderErrorReason::Other("printf needs a format string as first parameter".into())
        })?;
    let mut args = Vec::new();
    for param in params {
        if param.is_value_missing() {
            let name = param.relative_path().cloned().unwrap_or_else(|| "?".into());
            return Err(RenderErrorReason::MissingVariable(Some(name)).into());
        }
        args.push(match param.value() {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        });
    }
    out.write(&format_go(&format, &args).map_err(RenderErrorReason::Other)?)?;
    Ok(())
}

fn format_go(format: &str, args: &[String]) -> Result<String, String> {
    let mut out = String::with_capacity(format.len());
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s' | 'v' | 'd') => {
                out.push_str(args.next().ok_or("printf: more verbs than arguments")?);
            }
            Some(verb) => return Err(format!("printf: verb %{verb} is not supported (use %s)")),
            None => return Err("printf: format ends with %".into()),
        }
    }
    if args.next().is_some() {
        return Err("printf: more arguments than verbs".into());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::format_go;

    #[test]
    fn formats_like_go() {
        let args = ["test".to_owned(), "podinfo".to_owned()];
        assert_eq!(
            format_go("%s__%v 100%%", &args).unwrap(),
            "test__podinfo 100%"
        );
        assert!(
            format_go("%s %s %s", &args)
                .unwrap_err()
                .contains("more verbs")
        );
        assert!(
            format_go("%s", &args)
                .unwrap_err()
                .contains("more arguments")
        );
        assert!(format_go("%x %s", &args).unwrap_err().contains("%x"));
    }
}
