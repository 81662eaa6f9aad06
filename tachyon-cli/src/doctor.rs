//! `tachyon doctor`: the checks of [`tachyon::doctor`], as a table or JSON.

use tachyon::doctor::{Check, Level};

/// The checks as JSON: `{"ok": bool, "checks": [{name, level, found, why, fix}]}`.
pub fn to_json(checks: &[Check], ok: bool) -> serde_json::Value {
    let list: Vec<serde_json::Value> = checks
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "level": c.level.name(),
                "found": c.found,
                "why": c.why,
                "fix": c.fix,
            })
        })
        .collect();
    serde_json::json!({ "ok": ok, "checks": list })
}

/// The checks as a table, with why and how to fix under each one that is not ok.
pub fn print_table(checks: &[Check], ok: bool) {
    for c in checks {
        println!("{:<9} {:<18} {}", c.level.name(), c.name, c.found);
        if c.level != Level::Ok {
            println!("{:<28} why: {}", "", c.why);
            if let Some(fix) = c.fix {
                println!("{:<28} fix: {fix}", "");
            }
        }
    }
    let degraded = checks.iter().filter(|c| c.level == Level::Degraded).count();
    if ok {
        println!("\nTachyon runs here ({degraded} degraded; `tachyon doctor --json` says why each matters).");
    } else {
        println!("\nSomething Tachyon needs is missing (see `missing` above).");
    }
}
