//! Writes the seed corpus of the `decoders` target: every record kind, as is and with the
//! repair flags, into the directory given (default `corpus/decoders`).

#[path = "../../../tests/common/records.rs"]
#[allow(dead_code)]
mod records;
#[path = "../state.rs"]
#[allow(dead_code)]
mod state;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus/decoders".into());
    std::fs::create_dir_all(&dir)?;
    let s = state::State::new();
    for (i, rec) in s.records.iter().enumerate() {
        for flags in [0u8, 3] {
            let mut input = vec![i as u8, flags];
            input.extend_from_slice(&rec.bytes);
            let name = format!("{dir}/{:02}-{}-{flags}", i, rec.name.replace([' ', ','], "_"));
            std::fs::write(name, input)?;
        }
    }
    Ok(())
}
