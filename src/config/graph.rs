//! The `depends_on` graph: cycles, and the closure kept by `--only`.
//! Apps are indices in file order; edges point from an app to what it depends on.

/// Every cycle reachable in the graph, each as a path that returns to its start
/// (`[a, b, a]`). Iterative, so a hostile file with a long chain cannot overflow the stack.
pub fn cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    let mut found = Vec::new();
    for root in 0..deps.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (node, index of the next edge to follow)
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnStack;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            let Some(&to) = deps.get(node).and_then(|d| d.get(next)) else {
                mark[node] = Mark::Done;
                stack.pop();
                continue;
            };
            top.1 += 1;
            match mark.get(to).copied() {
                Some(Mark::New) => {
                    mark[to] = Mark::OnStack;
                    stack.push((to, 0));
                }
                Some(Mark::OnStack) => {
                    let start = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[start..].iter().map(|(n, _)| *n).collect();
                    cycle.push(to);
                    found.push(cycle);
                }
                _ => {}
            }
        }
    }
    found
}

/// The apps in `roots` plus everything they depend on, transitively, in file order.
pub fn closure(deps: &[Vec<usize>], roots: &[usize]) -> Vec<usize> {
    let mut keep = vec![false; deps.len()];
    let mut todo: Vec<usize> = roots.iter().copied().filter(|&r| r < deps.len()).collect();
    while let Some(n) = todo.pop() {
        if std::mem::replace(&mut keep[n], true) {
            continue;
        }
        todo.extend(
            deps[n]
                .iter()
                .copied()
                .filter(|&d| d < deps.len() && !keep[d]),
        );
    }
    (0..deps.len()).filter(|&i| keep[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acyclic_graphs_have_no_cycles() {
        assert!(cycles(&[vec![1, 2], vec![2], vec![]]).is_empty());
        assert!(cycles(&[]).is_empty());
    }

    #[test]
    fn cycles_are_named_from_where_they_start() {
        assert_eq!(cycles(&[vec![1], vec![0]]), [vec![0, 1, 0]]);
        assert_eq!(cycles(&[vec![1], vec![2], vec![1]]), [vec![1, 2, 1]]);
        assert_eq!(
            cycles(&[vec![], vec![2], vec![3], vec![1]]),
            [vec![1, 2, 3, 1]]
        );
    }

    #[test]
    fn long_chains_do_not_recurse() {
        let n = 100_000;
        let mut deps: Vec<Vec<usize>> = (0..n).map(|i| vec![i + 1]).collect();
        deps[n - 1] = vec![0];
        assert_eq!(cycles(&deps).len(), 1);
    }

    #[test]
    fn closure_keeps_transitive_dependencies_in_file_order() {
        // 0 web -> 2 api -> 3 db; 1 worker -> 3 db; 4 other
        let deps = vec![vec![2], vec![3], vec![3], vec![], vec![]];
        assert_eq!(closure(&deps, &[0]), [0, 2, 3]);
        assert_eq!(closure(&deps, &[1, 4]), [1, 3, 4]);
        assert_eq!(closure(&deps, &[3]), [3]);
        // A cycle does not loop forever.
        assert_eq!(closure(&[vec![1], vec![0]], &[0]), [0, 1]);
    }
}
