//! Which CPUs each host of the lab gets. Where a component runs is a
//! [`loadlab_supervise::Place`] (namespace, CPUs, user); this module decides the CPU
//! lists.

/// The CPUs this process may run on.
pub fn available_cpus() -> Vec<usize> {
    let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) else { return vec![0] };
    (0..nix::sched::CpuSet::count()).filter(|cpu| set.is_set(*cpu).unwrap_or(false)).collect()
}

/// Gives each host `vcpus` CPUs out of `available`, in order and wrapping around,
/// so hosts share CPUs only when the machine has fewer than the topology asks for.
/// The hosts at `generators` (the load generators') are served first and never share
/// with another host: they take at most all but one CPU, wrapping around among
/// themselves when that is short, and the others wrap around what is left. A
/// generator that shares CPUs with the system under test saturates with it, and the
/// run then measures the generator.
pub fn assign_cpus(vcpus: &[u32], available: &[usize], generators: &[usize]) -> Vec<String> {
    let render = |cpus: &mut Vec<usize>| {
        cpus.sort();
        cpus.dedup();
        cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
    };
    // Hands each of `hosts` its count of `pool`, in turn, wrapping around the pool.
    let hand_out = |hosts: &[usize], pool: &[usize], assigned: &mut Vec<String>| {
        let mut next = 0usize;
        for &index in hosts {
            let count = (vcpus[index] as usize).clamp(1, pool.len().max(1));
            let mut cpus: Vec<usize> = (0..count).map(|offset| pool[(next + offset) % pool.len()]).collect();
            next += count;
            assigned[index] = render(&mut cpus);
        }
    };
    let mut assigned = vec![String::new(); vcpus.len()];
    let mut pool: Vec<usize> = available.to_vec();
    if !generators.is_empty() && available.len() > 1 {
        // At most all but one CPU, so the other hosts keep at least one.
        let wanted: usize = generators.iter().map(|index| (vcpus[*index] as usize).max(1)).sum();
        let theirs: Vec<usize> = pool.drain(..wanted.min(available.len() - 1)).collect();
        hand_out(generators, &theirs, &mut assigned);
    }
    let others: Vec<usize> = (0..vcpus.len()).filter(|index| assigned[*index].is_empty()).collect();
    hand_out(&others, &pool, &mut assigned);
    assigned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_handed_out_in_turn_and_shared_only_when_short() {
        assert_eq!(assign_cpus(&[1, 2, 2, 1], &[0, 1, 2, 3, 4, 5], &[]), ["0", "1,2", "3,4", "5"]);
        assert_eq!(assign_cpus(&[1, 2, 2, 1], &[0, 1], &[]), ["0", "0,1", "0,1", "1"]);
        assert_eq!(assign_cpus(&[4], &[0, 1], &[]), ["0,1"]);
    }

    #[test]
    fn the_generator_never_shares_its_cpus() {
        // Enough CPUs: the same as without.
        assert_eq!(assign_cpus(&[1, 2, 2, 1], &[0, 1, 2, 3, 4, 5], &[0]), ["0", "1,2", "3,4", "5"]);
        // Two CPUs: the generator gets one, the rest share the other.
        assert_eq!(assign_cpus(&[1, 2, 2, 1], &[0, 1], &[0]), ["0", "1", "1", "1"]);
        // It may not take them all, and a single CPU is shared by everyone.
        assert_eq!(assign_cpus(&[4, 1], &[0, 1], &[0]), ["0", "1"]);
        assert_eq!(assign_cpus(&[1, 1], &[0], &[0]), ["0", "0"]);
    }

    #[test]
    fn several_generators_share_only_among_themselves() {
        // Enough CPUs: each its own, served first wherever they are in the file.
        assert_eq!(assign_cpus(&[2, 1, 1, 1], &[0, 1, 2, 3, 4], &[1, 3]), ["2,3", "0", "4", "1"]);
        // Two CPUs: both generators on one, everyone else on the other.
        assert_eq!(assign_cpus(&[1, 2, 2, 1, 1], &[0, 1], &[0, 4]), ["0", "1", "1", "1", "0"]);
        // Three CPUs, generators wanting three: they take two, wrapping among themselves.
        assert_eq!(assign_cpus(&[2, 1, 1], &[0, 1, 2], &[0, 2]), ["0,1", "2", "0"]);
    }
}
