//! Explores the real protocol more deeply than CI does and prints what it found.
//!
//! `cargo run --release -p model --example check -- [ci|mid|full|deep|a,b,c,d,e,f,g,h] [threads]`
//!
//! - `ci`: the bound `cargo test -p model` checks;
//! - `mid`: the CI bound plus a lost HTTP message (about 9 million states, minutes);
//! - `full`: one of each fault, HTTP losses and written-twice frames included;
//! - `deep`: `full` with three commands (not run to the end here: far beyond hours);
//! - `a,b,c,d,e,f,g,h`: a delivery bound of your own (commands, max tick, device kills,
//!   relay kills, socket drops, losses, dups, pulls).

use model::{check, delivery, resume};

fn main() {
    let mut args = std::env::args().skip(1);
    let depth = args.next().unwrap_or_else(|| "mid".into());
    let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(2);
    let (d, r) = match depth.as_str() {
        "ci" => (delivery::Bounds::CI, resume::Bounds::CI),
        "mid" => (
            delivery::Bounds {
                losses: 1,
                ..delivery::Bounds::CI
            },
            resume::Bounds {
                events: 5,
                prunes: 3,
                drops: 3,
                ..resume::Bounds::CI
            },
        ),
        "full" => (
            delivery::Bounds::FULL,
            resume::Bounds {
                events: 6,
                prunes: 3,
                drops: 3,
                relay_kills: 2,
                dups: 2,
                bus_losses: 2,
            },
        ),
        "deep" => (
            delivery::Bounds {
                commands: 3,
                ..delivery::Bounds::FULL
            },
            resume::Bounds {
                events: 7,
                prunes: 4,
                drops: 3,
                relay_kills: 2,
                dups: 2,
                bus_losses: 2,
            },
        ),
        custom if custom.contains(',') => {
            // commands,max_tick,device_kills,relay_kills,link_drops,losses,dups,pulls
            let n: Vec<u8> = custom.split(',').filter_map(|x| x.parse().ok()).collect();
            if n.len() != 8 {
                eprintln!("a custom bound is eight numbers: commands,max_tick,device_kills,relay_kills,link_drops,losses,dups,pulls");
                std::process::exit(2);
            }
            (
                delivery::Bounds {
                    commands: n[0],
                    max_tick: n[1],
                    device_kills: n[2],
                    relay_kills: n[3],
                    link_drops: n[4],
                    losses: n[5],
                    dups: n[6],
                    pulls: n[7],
                },
                resume::Bounds::CI,
            )
        }
        other => {
            eprintln!("unknown depth {other:?}: use ci, mid, full, deep or eight numbers");
            std::process::exit(2);
        }
    };
    let mut failed = false;
    for (name, report) in [
        ("delivery", check(delivery::Delivery::real(d), threads)),
        (
            "resume",
            check(
                resume::Resume {
                    bounds: r,
                    faults: Default::default(),
                },
                threads,
            ),
        ),
    ] {
        println!(
            "{name} ({depth}): {} distinct states ({} generated), depth {}, {:.1} s",
            report.unique_states,
            report.states,
            report.max_depth,
            report.elapsed.as_secs_f64()
        );
        for (property, trace) in &report.violations {
            failed = true;
            println!("VIOLATED: {property}\n{trace}");
        }
    }
    if failed {
        std::process::exit(1);
    }
}
