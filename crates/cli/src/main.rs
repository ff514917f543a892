//! The `flowdrill` binary: arguments, output formatting, and the wiring of the library crates.
//!
//! Exit codes: 0 success, 2 a usage or syntax error (the user can fix the command line),
//! 1 any other failure. A broken pipe (`flowdrill top | head`) is success.

mod args;
mod cmd;
mod console;
mod output;
mod units;

use clap::Parser;
use std::process::ExitCode;

/// Large per-bin column buffers are allocated and freed on every query; glibc returns them to
/// the kernel each time (page faults dominated a read profile), mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl CliError {
    /// A mistake in the command line or an expression: exit code 2.
    pub fn usage(e: impl Into<anyhow::Error>) -> CliError {
        CliError {
            code: 2,
            error: e.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> CliError {
        CliError {
            code: 1,
            error: e.into(),
        }
    }
}

pub type CliResult = Result<(), CliError>;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if !matches!(
        cli.command,
        args::Command::Console(_)
            | args::Command::Collect(_)
            | args::Command::Serve(_)
            | args::Command::Demo(_)
            | args::Command::Import(_)
    ) {
        keep_freed_memory();
    }
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_broken_pipe(&e.error) {
                return ExitCode::SUCCESS;
            }
            eprintln!("flowdrill: error: {:#}", e.error);
            ExitCode::from(e.code)
        }
    }
}

/// For a command that runs and exits: mimalloc keeps the memory it frees instead of handing it
/// back to the kernel after 10 ms. The next bin's buffers then reuse the last one's pages; on
/// the development VM, zeroing fresh pages was 40–70 % of a 10-million-record query's time.
/// (The long-running commands keep the default, so that their memory shrinks after a peak.)
///
/// The C allocator too: zstd allocates its decompression context (about 160 KB, and its
/// buffers) with `malloc` for every column chunk read (the Parquet reader makes a codec per
/// chunk), and glibc hands blocks that large back to the kernel when they are freed, so every
/// chunk faulted fresh pages in again: two thirds of a `top srcip` query's page faults over the
/// 5 M-record benchmark store (1486 → 557 faults, 3 % of its time).
///
/// And no transparent huge pages: mimalloc asks for them (`MADV_HUGEPAGE`), which saves page
/// faults while memory stays in a process, but a one-shot command's memory is all fresh, and a
/// huge page is zeroed whole however little of it is used (a `top srcip` over the 5 M-record
/// benchmark store touched 146 MB with them, 91 MB without). On a virtual machine that hands
/// freed memory back to its host (free page reporting, as on the development VM: Firecracker),
/// a fresh huge page often costs a fault on the host: touching 100 MB of them in a new process
/// took 190–230 ms there (and 4.5 ms when the host still had them), 100 MB of 4 KiB pages a
/// steady 35 ms. Run a few seconds apart, as a user at a prompt runs them, `top srcip` took
/// 0.17–0.35 s with huge pages and 0.10–0.14 s without; back to back 0.08–0.09 s and 0.10 s.
///
/// The `unsafe` of the binary: calls into the allocators the binary already links, and `prctl`.
#[allow(unsafe_code)]
fn keep_freed_memory() {
    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    /// `mi_option_purge_delay` in `mi_option_t`: the same index in mimalloc 3 (what
    /// libmimalloc-sys 0.1.49 builds by default, and so this binary) and mimalloc 2.
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    // SAFETY: mi_option_set only stores the value in mimalloc's option table; -1 is the
    // documented "never purge" value of this option.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        /// `M_TRIM_THRESHOLD` and `M_MMAP_THRESHOLD` of glibc's `<malloc.h>`.
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        // SAFETY: mallopt only sets glibc malloc's parameters (it takes the arena locks
        // itself); 32 MiB is glibc's largest mmap threshold on 64-bit targets, and the trim
        // threshold only decides when freed heap memory is returned to the kernel. A value it
        // refuses leaves the default (return value 0), which is harmless.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, 256 << 20);
        }
    }
    #[cfg(target_os = "linux")]
    {
        unsafe extern "C" {
            fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
        }
        /// `PR_SET_THP_DISABLE` of `<linux/prctl.h>`.
        const PR_SET_THP_DISABLE: std::ffi::c_int = 41;
        // SAFETY: the option sets a flag of this process that only changes how the kernel
        // backs its memory (no transparent huge pages); it reads no memory of ours. A kernel
        // without it returns an error, which leaves things as they were.
        unsafe {
            prctl(
                PR_SET_THP_DISABLE,
                1 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
            );
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
