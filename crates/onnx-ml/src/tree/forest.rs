//! The trees of an ensemble, flattened once at parse into arrays, and the walk from root to
//! leaf.
//!
//! The attributes describe nodes by `(tree id, node id)`, with arbitrary ids. Here each
//! tree becomes a run of [`Branch`]es in one array, in depth-first order (false child first,
//! as onnxruntime lays them out), each branch holding its threshold, its feature and the
//! indices of its two children; a child index `>= 0` is a branch, `< 0` is the leaf `!index`.
//! Leaves exist only as indices into the weight arrays. A walk is then a loop of one load,
//! one comparison and one indexed jump per level, with no test for "is this a leaf" on the
//! node itself. The split mode and the missing-value flag are packed into the branch's
//! feature word, and when every branch splits the same way (skl2onnx: all BRANCH_LEQ) the
//! walk is compiled for that mode alone, as onnxruntime's `same_mode_` path is.
//!
//! Which node is a tree's root follows onnxruntime: the first node listed for that tree.
//! Nodes no walk from the root reaches are ignored, as they are there. Children shared by
//! two parents (LightGBM's converters do that) are kept shared.

use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::{Add, Div};

use tract_onnx::prelude::*;

use super::attrs::Attrs;
use super::{Finish, Rows};

/// The rows evaluated together, tree after tree: onnxruntime's batch size
/// (`parallel_tree_N_`), which keeps one tree in cache across the rows of a block.
const BLOCK: usize = 128;
/// Fewer rows per block when there are many outputs, to bound the scores held at once.
const MAX_BLOCK_SCORES: usize = 1 << 16;

/// The branch's feature index is the low bits of its key.
const FEATURE_MASK: u32 = (1 << 28) - 1;
/// Then 3 bits of split [`Mode`].
const MODE_SHIFT: u32 = 28;
const MODE_MASK: u32 = 0b111;
/// Then the missing-value flag: NaN takes the true branch.
const TRACK_BIT: u32 = 1 << 31;

/// The number types thresholds are compared and scores summed in.
pub(super) trait Real:
    Copy + PartialOrd + Add<Output = Self> + Div<Output = Self> + Debug + Send + Sync + 'static
{
    const ZERO: Self;
    fn from_f64(value: f64) -> Self;
    fn from_usize(value: usize) -> Self;
    fn neg(self) -> Self;
    fn to_f32(self) -> f32;
    fn is_nan(self) -> bool;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    fn from_f64(value: f64) -> f32 {
        value as f32
    }
    fn from_usize(value: usize) -> f32 {
        value as f32
    }
    fn neg(self) -> f32 {
        -self
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    fn from_f64(value: f64) -> f64 {
        value
    }
    fn from_usize(value: usize) -> f64 {
        value as f64
    }
    fn neg(self) -> f64 {
        -self
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// How a branch compares `x` (the row's feature) with its threshold; `x op threshold`
/// true takes the true branch. The discriminants are the values packed in the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Leq = 0,
    Lt = 1,
    Gte = 2,
    Gt = 3,
    Eq = 4,
    Neq = 5,
}

/// A node of `nodes_modes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Branch(Mode),
    Leaf,
}

impl Kind {
    /// A `nodes_modes` entry, `None` when unknown (onnxruntime refuses those too).
    pub(super) fn parse(mode: &str) -> Option<Kind> {
        Some(match mode {
            "BRANCH_LEQ" => Kind::Branch(Mode::Leq),
            "BRANCH_LT" => Kind::Branch(Mode::Lt),
            "BRANCH_GTE" => Kind::Branch(Mode::Gte),
            "BRANCH_GT" => Kind::Branch(Mode::Gt),
            "BRANCH_EQ" => Kind::Branch(Mode::Eq),
            "BRANCH_NEQ" => Kind::Branch(Mode::Neq),
            "LEAF" => Kind::Leaf,
            _ => return None,
        })
    }
}

/// The node attributes, one entry per node, their lengths checked by the caller.
pub(super) struct Nodes<'a> {
    pub(super) tree_ids: &'a [i64],
    pub(super) node_ids: &'a [i64],
    pub(super) feature_ids: &'a [i64],
    pub(super) kinds: Vec<Kind>,
    pub(super) values: &'a [f64],
    pub(super) true_ids: &'a [i64],
    pub(super) false_ids: &'a [i64],
    /// `nodes_missing_value_tracks_true`, of any length: onnxruntime reads a missing
    /// entry as 0, and only 1 as true.
    pub(super) tracks: &'a [i64],
}

/// The weight attributes (`class_*` or `target_*`), one entry per weight, their lengths
/// checked and their target ids validated by the caller.
pub(super) struct Weights<'a> {
    /// `class` or `target`, for the errors.
    pub(super) prefix: &'static str,
    pub(super) tree_ids: &'a [i64],
    pub(super) node_ids: &'a [i64],
    pub(super) targets: &'a [i64],
    pub(super) values: &'a [f64],
}

/// An inner node.
#[derive(Clone, Copy, Debug)]
struct Branch<T> {
    threshold: T,
    /// The feature index, the mode and the missing-value flag (see [`FEATURE_MASK`]).
    key: u32,
    /// The false then the true child: a branch index, or `!leaf` for a leaf.
    children: [i32; 2],
}

/// Whether all the branches split the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Same(Mode),
    Mixed,
}

/// The flattened trees of an ensemble, thresholds and weights of type `T`.
#[derive(Debug)]
pub(super) struct Forest<T> {
    branches: Vec<Branch<T>>,
    /// Each tree's root: a branch index, or `!leaf` for a tree that is a single leaf.
    roots: Vec<i32>,
    /// Each leaf's weight when there is one target or class: onnxruntime's
    /// `value_or_unique_weight`, the leaf's first weight, or its `nodes_values` entry when
    /// it has none.
    single: Vec<T>,
    /// Leaf `l`'s weights are `targets[i]`, `weights[i]` for `i` in
    /// `starts[l]..starts[l + 1]`, in the order the attributes list them.
    starts: Vec<u32>,
    targets: Vec<u32>,
    weights: Vec<T>,
    rule: Rule,
    /// Some branch sends NaN to its true child.
    tracks: bool,
    min_width: usize,
}

/// The state of a node during the depth-first walk that flattens a tree.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    /// On the path from the root to the node being visited: reaching it again is a cycle.
    OnPath,
    Done,
}

/// The flattening of the trees: where each node of the attributes went.
struct Layout {
    /// Per node of the attributes: its branch index, or `!leaf`, once reached.
    code: Vec<i32>,
    visit: Vec<Visit>,
    /// The attribute position of each branch, its mode, and the positions of its false and
    /// true children.
    branches: Vec<(usize, Mode, [usize; 2])>,
    /// The attribute position of each leaf.
    leaves: Vec<usize>,
    roots: Vec<i32>,
}

impl<T: Real> Forest<T> {
    /// Validates and flattens the trees (the caller has checked the weights' target ids).
    pub(super) fn build(attrs: &Attrs, nodes: &Nodes, weights: &Weights) -> TractResult<Forest<T>> {
        let positions = positions(attrs, nodes)?;
        let layout = Layout::of(attrs, nodes, &positions)?;
        let branches = layout
            .branches
            .iter()
            .map(|&(pos, mode, [false_pos, true_pos])| {
                let feature = nodes.feature_ids[pos];
                if !(0..=i64::from(FEATURE_MASK)).contains(&feature) {
                    attrs.refuse(
                        "nodes_featureids",
                        format!("feature indices in 0..={FEATURE_MASK}"),
                        feature,
                    )?;
                }
                let track = nodes.tracks.get(pos) == Some(&1);
                Ok(Branch {
                    threshold: T::from_f64(nodes.values[pos]),
                    key: feature as u32
                        | (mode as u32) << MODE_SHIFT
                        | if track { TRACK_BIT } else { 0 },
                    children: [layout.code[false_pos], layout.code[true_pos]],
                })
            })
            .collect::<TractResult<Vec<_>>>()?;
        let (starts, targets, weights) = layout.weights(attrs, weights, &positions, nodes)?;
        let single = (0..layout.leaves.len())
            .map(|leaf| {
                if starts[leaf] < starts[leaf + 1] {
                    weights[starts[leaf] as usize]
                } else {
                    T::from_f64(nodes.values[layout.leaves[leaf]])
                }
            })
            .collect();
        Ok(Forest {
            rule: rule(&layout),
            tracks: branches.iter().any(|b| b.key & TRACK_BIT != 0),
            min_width: min_width(nodes, &layout),
            branches,
            roots: layout.roots,
            single,
            starts,
            targets,
            weights,
        })
    }

    pub(super) fn tree_count(&self) -> usize {
        self.roots.len()
    }

    pub(super) fn min_width(&self) -> usize {
        self.min_width
    }

    /// Evaluates every tree on every row of `x` (rows of `rows.stride` values, converted to
    /// `C` as they are read), folds the leaves' weights into `outputs` scores per row with
    /// `F`, and hands each row's scores to `finish`.
    ///
    /// Rows go by blocks (of [`BLOCK`] rows but with many outputs), and within a block tree
    /// after tree, each row's scores in tree order: onnxruntime's order when it runs on one
    /// thread.
    pub(super) fn run<F: Fold, X: Copy + Into<C>, C: Real, W: Finish>(
        &self,
        x: &[X],
        rows: &Rows,
        outputs: usize,
        finish: &mut W,
    ) -> TractResult<()>
    where
        T: Into<C>,
    {
        let block = BLOCK.min(MAX_BLOCK_SCORES / outputs).max(1);
        let held = block.min(rows.count);
        let mut scores = vec![C::ZERO; held * outputs];
        let mut has_score = vec![false; held * outputs];
        let mut leaves = vec![0u32; held];
        for start in (0..rows.count).step_by(block) {
            let len = block.min(rows.count - start);
            scores.fill(C::ZERO);
            has_score.fill(false);
            let block_rows = &x[start * rows.stride..(start + len) * rows.stride];
            for &root in &self.roots {
                let leaves = &mut leaves[..len];
                self.leaves::<X, C>(root, block_rows, rows.stride, leaves);
                self.fold::<F, C>(leaves, outputs, &mut scores, &mut has_score);
            }
            for row in 0..len {
                let range = row * outputs..(row + 1) * outputs;
                finish.row(&mut scores[range.clone()], &mut has_score[range])?;
            }
        }
        Ok(())
    }

    /// Folds the weights of each row's leaf into the row's scores. With one output, the
    /// leaf's single weight (onnxruntime's `ProcessTreeNodePrediction1`); with more, each of
    /// its weights into its target's score (`ProcessTreeNodePrediction`).
    fn fold<F: Fold, C: Real>(
        &self,
        leaves: &[u32],
        outputs: usize,
        scores: &mut [C],
        has_score: &mut [bool],
    ) where
        T: Into<C>,
    {
        if outputs == 1 {
            for (row, &leaf) in leaves.iter().enumerate() {
                F::fold(
                    &mut scores[row],
                    &mut has_score[row],
                    self.single[leaf as usize].into(),
                );
            }
            return;
        }
        for (row, &leaf) in leaves.iter().enumerate() {
            let range =
                self.starts[leaf as usize] as usize..self.starts[leaf as usize + 1] as usize;
            for (&target, &weight) in self.targets[range.clone()].iter().zip(&self.weights[range]) {
                let at = row * outputs + target as usize;
                F::fold(&mut scores[at], &mut has_score[at], weight.into());
            }
        }
    }

    /// The leaf each row of `rows` reaches in the tree at `root`, with the walk compiled
    /// for the ensemble's split rule.
    fn leaves<X: Copy + Into<C>, C: Real>(
        &self,
        root: i32,
        rows: &[X],
        stride: usize,
        out: &mut [u32],
    ) where
        T: Into<C>,
    {
        match self.rule {
            Rule::Same(Mode::Leq) => self.leaves_with::<Leq, X, C>(root, rows, stride, out),
            Rule::Same(Mode::Lt) => self.leaves_with::<Lt, X, C>(root, rows, stride, out),
            Rule::Same(Mode::Gte) => self.leaves_with::<Gte, X, C>(root, rows, stride, out),
            Rule::Same(Mode::Gt) => self.leaves_with::<Gt, X, C>(root, rows, stride, out),
            Rule::Same(Mode::Eq) => self.leaves_with::<Equal, X, C>(root, rows, stride, out),
            Rule::Same(Mode::Neq) => self.leaves_with::<NotEqual, X, C>(root, rows, stride, out),
            Rule::Mixed => self.leaves_with::<Mixed, X, C>(root, rows, stride, out),
        }
    }

    fn leaves_with<S: Split, X: Copy + Into<C>, C: Real>(
        &self,
        root: i32,
        rows: &[X],
        stride: usize,
        out: &mut [u32],
    ) where
        T: Into<C>,
    {
        if self.tracks {
            walk::<S, true, T, X, C>(&self.branches, root, rows, stride, out)
        } else {
            walk::<S, false, T, X, C>(&self.branches, root, rows, stride, out)
        }
    }
}

/// The leaf each row reaches from `root`. NaN takes the true branch where the branch
/// tracks missing values; elsewhere the comparison decides, as in onnxruntime (so NaN goes
/// false but for BRANCH_NEQ, where it goes true).
fn walk<S: Split, const TRACKS: bool, T: Copy + Into<C>, X: Copy + Into<C>, C: Real>(
    branches: &[Branch<T>],
    root: i32,
    rows: &[X],
    stride: usize,
    out: &mut [u32],
) {
    for (r, leaf) in out.iter_mut().enumerate() {
        let row = &rows[r * stride..(r + 1) * stride];
        let mut at = root;
        while at >= 0 {
            let branch = &branches[at as usize];
            let x: C = row[(branch.key & FEATURE_MASK) as usize].into();
            let threshold: C = branch.threshold.into();
            let goes_true = S::goes_true(x, threshold, branch.key)
                || (TRACKS && branch.key & TRACK_BIT != 0 && x.is_nan());
            at = branch.children[goes_true as usize];
        }
        *leaf = !at as u32;
    }
}

/// A split mode, as a type, so that a walk is compiled for one mode.
trait Split {
    fn goes_true<C: Real>(x: C, threshold: C, key: u32) -> bool;
}

struct Leq;
struct Lt;
struct Gte;
struct Gt;
struct Equal;
struct NotEqual;
/// Each branch's own mode, read from its key.
struct Mixed;

impl Split for Leq {
    fn goes_true<C: Real>(x: C, threshold: C, _: u32) -> bool {
        x <= threshold
    }
}

impl Split for Lt {
    fn goes_true<C: Real>(x: C, threshold: C, _: u32) -> bool {
        x < threshold
    }
}

impl Split for Gte {
    fn goes_true<C: Real>(x: C, threshold: C, _: u32) -> bool {
        x >= threshold
    }
}

impl Split for Gt {
    fn goes_true<C: Real>(x: C, threshold: C, _: u32) -> bool {
        x > threshold
    }
}

impl Split for Equal {
    fn goes_true<C: Real>(x: C, threshold: C, _: u32) -> bool {
        x == threshold
    }
}

impl Split for NotEqual {
    fn goes_true<C: Real>(x: C, threshold: C, _: u32) -> bool {
        x != threshold
    }
}

impl Split for Mixed {
    fn goes_true<C: Real>(x: C, threshold: C, key: u32) -> bool {
        match (key >> MODE_SHIFT) & MODE_MASK {
            0 => x <= threshold,
            1 => x < threshold,
            2 => x >= threshold,
            3 => x > threshold,
            4 => x == threshold,
            _ => x != threshold,
        }
    }
}

/// How the weights of the leaves reached are combined into a score
/// (`aggregate_function`; AVERAGE is SUM divided at the end).
pub(super) trait Fold {
    fn fold<C: Real>(score: &mut C, has_score: &mut bool, weight: C);
}

pub(super) struct Sum;
pub(super) struct Min;
pub(super) struct Max;

impl Fold for Sum {
    fn fold<C: Real>(score: &mut C, has_score: &mut bool, weight: C) {
        *score = *score + weight;
        *has_score = true;
    }
}

impl Fold for Min {
    fn fold<C: Real>(score: &mut C, has_score: &mut bool, weight: C) {
        if !*has_score || weight < *score {
            *score = weight;
        }
        *has_score = true;
    }
}

impl Fold for Max {
    fn fold<C: Real>(score: &mut C, has_score: &mut bool, weight: C) {
        if !*has_score || weight > *score {
            *score = weight;
        }
        *has_score = true;
    }
}

/// The position of each `(tree id, node id)` in the attributes, refusing duplicates.
fn positions(attrs: &Attrs, nodes: &Nodes) -> TractResult<HashMap<(i64, i64), usize>> {
    let mut positions = HashMap::with_capacity(nodes.tree_ids.len());
    for (pos, (&tree, &node)) in nodes.tree_ids.iter().zip(nodes.node_ids).enumerate() {
        if positions.insert((tree, node), pos).is_some() {
            attrs.refuse(
                "nodes_nodeids",
                "each node id once per tree",
                format!("node {node} of tree {tree} twice"),
            )?;
        }
    }
    Ok(positions)
}

impl Layout {
    /// Walks each tree from its root (the first node listed for it), numbering the
    /// branches and leaves reached, refusing children that do not exist and cycles.
    fn of(
        attrs: &Attrs,
        nodes: &Nodes,
        positions: &HashMap<(i64, i64), usize>,
    ) -> TractResult<Layout> {
        let count = nodes.tree_ids.len();
        let mut layout = Layout {
            code: vec![0; count],
            visit: vec![Visit::New; count],
            branches: vec![],
            leaves: vec![],
            roots: vec![],
        };
        for root in tree_roots(attrs, nodes.tree_ids)? {
            layout.visit_tree(attrs, nodes, positions, root)?;
            layout.roots.push(layout.code[root]);
        }
        if layout.branches.len().max(layout.leaves.len()) > i32::MAX as usize {
            attrs.refuse(
                "nodes_nodeids",
                "at most 2^31 branches and 2^31 leaves",
                count,
            )?;
        }
        Ok(layout)
    }

    /// A depth-first walk from `root`, false child first, without recursion (a degenerate
    /// tree can be deeper than a thread's stack).
    fn visit_tree(
        &mut self,
        attrs: &Attrs,
        nodes: &Nodes,
        positions: &HashMap<(i64, i64), usize>,
        root: usize,
    ) -> TractResult<()> {
        let mut stack = vec![(root, false)];
        while let Some((pos, leaving)) = stack.pop() {
            if leaving {
                self.visit[pos] = Visit::Done;
                continue;
            }
            if self.visit[pos] != Visit::New {
                continue; // a child shared with a branch visited before
            }
            let Kind::Branch(mode) = nodes.kinds[pos] else {
                self.code[pos] = !(self.leaves.len() as i32);
                self.leaves.push(pos);
                self.visit[pos] = Visit::Done;
                continue;
            };
            let children = [
                child(
                    attrs,
                    nodes,
                    positions,
                    pos,
                    "nodes_falsenodeids",
                    nodes.false_ids[pos],
                )?,
                child(
                    attrs,
                    nodes,
                    positions,
                    pos,
                    "nodes_truenodeids",
                    nodes.true_ids[pos],
                )?,
            ];
            self.code[pos] = self.branches.len() as i32;
            self.branches.push((pos, mode, children));
            self.visit[pos] = Visit::OnPath;
            stack.push((pos, true));
            for (&child, attr) in children
                .iter()
                .zip(["nodes_falsenodeids", "nodes_truenodeids"])
                .rev()
            {
                match self.visit[child] {
                    Visit::OnPath => attrs.refuse(
                        attr,
                        "trees (no path from a node back to itself)",
                        format!(
                            "a cycle: node {} of tree {} leads back to node {}",
                            nodes.node_ids[pos], nodes.tree_ids[pos], nodes.node_ids[child]
                        ),
                    )?,
                    Visit::New => stack.push((child, false)),
                    Visit::Done => {}
                }
            }
        }
        Ok(())
    }

    /// The leaves' weights in the attributes' order, grouped by leaf: `(starts, targets,
    /// weights)` as [`Forest`] keeps them. onnxruntime ignores weights given to a branch
    /// (old onnxmltools exports have some), and here those of unreachable leaves.
    fn weights<T: Real>(
        &self,
        attrs: &Attrs,
        weights: &Weights,
        positions: &HashMap<(i64, i64), usize>,
        nodes: &Nodes,
    ) -> TractResult<(Vec<u32>, Vec<u32>, Vec<T>)> {
        let mut leaf_of = Vec::with_capacity(weights.tree_ids.len());
        let mut starts = vec![0u32; self.leaves.len() + 1];
        for (&tree, &node) in weights.tree_ids.iter().zip(weights.node_ids) {
            let Some(&pos) = positions.get(&(tree, node)) else {
                return attrs.refuse(
                    &format!("{}_nodeids", weights.prefix),
                    "the ids of nodes of the trees",
                    format!("node {node} of tree {tree}, which is not among the nodes"),
                );
            };
            let leaf = (nodes.kinds[pos] == Kind::Leaf && self.visit[pos] == Visit::Done)
                .then(|| !self.code[pos] as usize);
            if let Some(leaf) = leaf {
                starts[leaf + 1] += 1;
            }
            leaf_of.push(leaf);
        }
        for leaf in 0..self.leaves.len() {
            starts[leaf + 1] += starts[leaf];
        }
        let total = starts[self.leaves.len()] as usize;
        let mut next: Vec<u32> = starts[..self.leaves.len()].to_vec();
        let (mut targets, mut values) = (vec![0u32; total], vec![T::ZERO; total]);
        for (entry, leaf) in leaf_of.into_iter().enumerate() {
            if let Some(leaf) = leaf {
                let at = next[leaf] as usize;
                next[leaf] += 1;
                targets[at] = weights.targets[entry] as u32;
                values[at] = T::from_f64(weights.values[entry]);
            }
        }
        Ok((starts, targets, values))
    }
}

/// The attribute position of a branch's child, which must be a node of the same tree.
fn child(
    attrs: &Attrs,
    nodes: &Nodes,
    positions: &HashMap<(i64, i64), usize>,
    pos: usize,
    attr: &str,
    id: i64,
) -> TractResult<usize> {
    let tree = nodes.tree_ids[pos];
    match positions.get(&(tree, id)) {
        Some(&child) => Ok(child),
        None => attrs.refuse(
            attr,
            format!("ids of nodes of tree {tree}"),
            format!(
                "{id} for node {} of tree {tree}, which has no node {id}",
                nodes.node_ids[pos]
            ),
        ),
    }
}

/// The position of each tree's root: the first node listed for it, as onnxruntime takes
/// it. onnxruntime starts a new tree wherever the tree id changes along the list, so a
/// tree whose nodes are not listed together would count as several; refused here.
fn tree_roots(attrs: &Attrs, tree_ids: &[i64]) -> TractResult<Vec<usize>> {
    let mut first_seen = HashMap::new();
    let mut roots = vec![];
    for (pos, &tree) in tree_ids.iter().enumerate() {
        if pos > 0 && tree_ids[pos - 1] == tree {
            continue;
        }
        if let Some(first) = first_seen.insert(tree, pos) {
            attrs.refuse(
                "nodes_treeids",
                "the nodes of each tree listed together",
                format!("tree {tree} at positions {first} and {pos}, with another tree between"),
            )?;
        }
        roots.push(pos);
    }
    Ok(roots)
}

/// The split rule of the branches reached: one mode for all, or mixed.
fn rule(layout: &Layout) -> Rule {
    let mut modes = layout.branches.iter().map(|&(_, mode, _)| mode);
    match modes.next() {
        Some(first) if modes.all(|mode| mode == first) => Rule::Same(first),
        Some(_) => Rule::Mixed,
        None => Rule::Same(Mode::Leq),
    }
}

/// One more than the largest feature id of the nodes reached, leaves included, and at
/// least 1: onnxruntime's `max_feature_id_` check, which starts from 0.
fn min_width(nodes: &Nodes, layout: &Layout) -> usize {
    let reached = layout
        .branches
        .iter()
        .map(|&(pos, _, _)| pos)
        .chain(layout.leaves.iter().copied());
    let max = reached
        .map(|pos| nodes.feature_ids[pos])
        .max()
        .unwrap_or(0)
        .max(0);
    usize::try_from(max).unwrap_or(usize::MAX - 1) + 1
}
