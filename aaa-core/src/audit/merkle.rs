//! RFC 6962 / RFC 9162 Merkle trees: leaf and node hashes, an incremental tree that keeps only
//! its O(log n) frontier, and inclusion and consistency proofs (generation and verification).

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf, a node or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The RFC 6962 leaf hash of `data`: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &[u8], right: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A Merkle tree that can only grow, holding only the roots of its perfect subtrees (the
/// "frontier" or compact range `[0, size)`): appending is O(log n) time and the memory is
/// O(log n).
///
/// ```
/// use aaa_core::audit::merkle::{MerkleTree, leaf_hash, node_hash};
///
/// let mut tree = MerkleTree::new();
/// tree.push(leaf_hash(b"a"));
/// tree.push(leaf_hash(b"b"));
/// assert_eq!(tree.root(), node_hash(&leaf_hash(b"a"), &leaf_hash(b"b")));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleTree {
    size: u64,
    /// Roots of the perfect subtrees, left (largest) to right (smallest).
    frontier: Vec<Hash>,
}

impl MerkleTree {
    /// The empty tree.
    pub fn new() -> Self {
        MerkleTree::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        // Each trailing one bit of the old size is a perfect subtree to merge with.
        let mut size = self.size;
        while size & 1 == 1 {
            if let Some(left) = self.frontier.pop() {
                hash = node_hash(&left, &hash);
            }
            size >>= 1;
        }
        self.frontier.push(hash);
        self.size = self.size.saturating_add(1);
    }

    /// The roots of the perfect subtrees, largest first: with [`size`](Self::size), all the
    /// tree keeps. [`from_frontier`](Self::from_frontier) makes the tree again.
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// The tree of `size` leaves whose perfect subtrees have the roots `frontier`, largest first;
    /// `None` unless there is one root per one bit of `size`.
    pub fn from_frontier(size: u64, frontier: Vec<Hash>) -> Option<Self> {
        (frontier.len() == size.count_ones() as usize).then_some(MerkleTree { size, frontier })
    }

    /// The root hash (the empty root for an empty tree).
    pub fn root(&self) -> Hash {
        let mut iter = self.frontier.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// The root of the tree over `leaves` (RFC 9162 MTH), O(n).
pub fn root_of(leaves: &[Hash]) -> Hash {
    let mut tree = MerkleTree::new();
    for leaf in leaves {
        tree.push(*leaf);
    }
    tree.root()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: u64) -> u64 {
    let mut k = 1u64;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The RFC 9162 inclusion proof (audit path) of leaf `index` in the tree over `leaves`.
///
/// Returns `None` when `index` is not a leaf of that tree.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Option<Vec<Hash>> {
    Leaves::all(leaves).inclusion_proof(index)
}

/// The RFC 9162 consistency proof between the first `size1` leaves and all of `leaves`.
///
/// Returns `None` unless `0 < size1 <= leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], size1: u64) -> Option<Vec<Hash>> {
    Leaves::all(leaves).consistency_proof(size1)
}

/// The leaves of a log whose first records were retired ([`retire`](super::retire)): of those
/// only the tree over them is kept (its perfect subtrees, [`MerkleTree::frontier`]), which is
/// enough for the inclusion proof of every leaf kept, and for consistency proofs from any size
/// not below the retired ones. From [`log_leaves`](super::log_leaves).
///
/// ```
/// use aaa_core::audit::merkle::{LogLeaves, MerkleTree, inclusion_proof, leaf_hash};
///
/// let leaves: Vec<_> = (0..10u8).map(|i| leaf_hash(&[i])).collect();
/// let mut retired = MerkleTree::new();
/// leaves[..6].iter().for_each(|l| retired.push(*l));
/// let kept = LogLeaves::after(retired, leaves[6..].to_vec());
/// assert_eq!(kept.inclusion_proof(7), inclusion_proof(&leaves, 7));
/// assert_eq!(kept.inclusion_proof(5), None); // retired
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogLeaves {
    retired: MerkleTree,
    leaves: Vec<Hash>,
}

impl LogLeaves {
    /// The leaves that follow the tree `retired` over the first ones.
    pub fn after(retired: MerkleTree, leaves: Vec<Hash>) -> Self {
        LogLeaves { retired, leaves }
    }

    /// The tree size: the leaves retired and kept.
    pub fn size(&self) -> u64 {
        self.retired.size() + self.leaves.len() as u64
    }

    /// The number of leaves retired: those below it have no inclusion proof here.
    pub fn retired(&self) -> u64 {
        self.retired.size()
    }

    /// The leaves kept, from leaf [`retired`](Self::retired) on.
    pub fn kept(&self) -> &[Hash] {
        &self.leaves
    }

    /// The root of the tree of all the leaves, retired and kept.
    pub fn root(&self) -> Hash {
        self.tree().root()
    }

    /// The tree of all the leaves, retired and kept.
    fn tree(&self) -> MerkleTree {
        let mut tree = self.retired.clone();
        self.leaves.iter().for_each(|leaf| tree.push(*leaf));
        tree
    }

    /// The inclusion proof of leaf `index` in the tree of [`size`](Self::size) leaves; `None`
    /// when it is not a leaf of the tree, or a retired one.
    pub fn inclusion_proof(&self, index: u64) -> Option<Vec<Hash>> {
        self.view().inclusion_proof(index)
    }

    /// The first `size` leaves (a checkpoint's tree); `None` when `size` is below the retired
    /// ones or above [`size`](Self::size).
    pub fn first(&self, size: u64) -> Option<LogLeaves> {
        let kept = usize::try_from(size.checked_sub(self.retired.size())?).ok()?;
        Some(LogLeaves {
            retired: self.retired.clone(),
            leaves: self.leaves.get(..kept)?.to_vec(),
        })
    }

    /// The consistency proof between the first `size1` leaves and the whole tree; `None` unless
    /// `0 < size1 <= size`, or when it needs nodes inside the retired part (possible only when
    /// `size1` is below [`retired`](Self::retired)).
    pub fn consistency_proof(&self, size1: u64) -> Option<Vec<Hash>> {
        self.view().consistency_proof(size1)
    }

    /// These leaves followed by those of `later`, a log whose retired records are these (the
    /// archive a retirement filled, then the log directory it was retired from): the proofs of
    /// every leaf of both. `None` unless `later`'s retired tree is the tree over these leaves,
    /// the same size and the same nodes (an archive that is not the retired part of `later`).
    ///
    /// ```
    /// use aaa_core::audit::merkle::{LogLeaves, MerkleTree, inclusion_proof, leaf_hash};
    ///
    /// let leaves: Vec<_> = (0..10u8).map(|i| leaf_hash(&[i])).collect();
    /// let archive = LogLeaves::after(MerkleTree::new(), leaves[..6].to_vec());
    /// let mut retired = MerkleTree::new();
    /// leaves[..6].iter().for_each(|l| retired.push(*l));
    /// let left = LogLeaves::after(retired, leaves[6..].to_vec());
    /// let whole = archive.clone().join(left.clone()).unwrap();
    /// assert_eq!(whole.inclusion_proof(3), inclusion_proof(&leaves, 3));
    /// // Not the retired part: refused.
    /// let other = LogLeaves::after(MerkleTree::new(), leaves[1..7].to_vec());
    /// assert_eq!(other.join(left), None);
    /// ```
    pub fn join(self, later: LogLeaves) -> Option<LogLeaves> {
        if self.tree() != later.retired {
            return None;
        }
        let mut leaves = self.leaves;
        leaves.extend_from_slice(&later.leaves);
        Some(LogLeaves {
            retired: self.retired,
            leaves,
        })
    }

    fn view(&self) -> Leaves<'_> {
        Leaves {
            retired: &self.retired,
            leaves: &self.leaves,
        }
    }
}

/// Leaves, after a retired tree (empty for a whole log): the RFC 9162 proof algorithms over
/// ranges of leaf indices.
struct Leaves<'a> {
    retired: &'a MerkleTree,
    leaves: &'a [Hash],
}

impl Leaves<'_> {
    fn all(leaves: &[Hash]) -> Leaves<'_> {
        static EMPTY: MerkleTree = MerkleTree {
            size: 0,
            frontier: Vec::new(),
        };
        Leaves {
            retired: &EMPTY,
            leaves,
        }
    }

    fn size(&self) -> u64 {
        self.retired.size() + self.leaves.len() as u64
    }

    fn inclusion_proof(&self, index: u64) -> Option<Vec<Hash>> {
        if index < self.retired.size() || index >= self.size() {
            return None;
        }
        let mut proof = Vec::new();
        self.path(index, 0, self.size(), &mut proof)?;
        Some(proof)
    }

    fn consistency_proof(&self, size1: u64) -> Option<Vec<Hash>> {
        if size1 == 0 || size1 > self.size() {
            return None;
        }
        let mut proof = Vec::new();
        self.subproof(size1, 0, self.size(), true, &mut proof)?;
        Some(proof)
    }

    /// PATH(m, D[a:b]).
    fn path(&self, m: u64, a: u64, b: u64, out: &mut Vec<Hash>) -> Option<()> {
        if b - a <= 1 {
            return Some(());
        }
        let k = split(b - a);
        if m < k {
            self.path(m, a, a + k, out)?;
            out.push(self.node(a + k, b)?);
        } else {
            self.path(m - k, a + k, b, out)?;
            out.push(self.node(a, a + k)?);
        }
        Some(())
    }

    /// SUBPROOF(m, D[a:b], complete).
    fn subproof(&self, m: u64, a: u64, b: u64, complete: bool, out: &mut Vec<Hash>) -> Option<()> {
        if m == b - a {
            if !complete {
                out.push(self.node(a, b)?);
            }
            return Some(());
        }
        let k = split(b - a);
        if m <= k {
            self.subproof(m, a, a + k, complete, out)?;
            out.push(self.node(a + k, b)?);
        } else {
            self.subproof(m - k, a + k, b, false, out)?;
            out.push(self.node(a, a + k)?);
        }
        Some(())
    }

    /// MTH(D[a:b]) (`a < b`): from the leaves kept, the retired tree's perfect subtrees, or both;
    /// `None` when it needs a retired leaf.
    fn node(&self, a: u64, b: u64) -> Option<Hash> {
        let retired = self.retired.size();
        if a >= retired {
            let from = usize::try_from(a - retired).ok()?;
            let to = usize::try_from(b - retired).ok()?;
            return Some(root_of(self.leaves.get(from..to)?));
        }
        // The retired tree's perfect subtrees, largest first, from leaf 0: one per one bit of
        // its size.
        let mut start = 0u64;
        let bits = (0..u64::BITS).rev().filter(|bit| retired >> bit & 1 == 1);
        for (bit, hash) in bits.zip(&self.retired.frontier) {
            let end = start + (1u64 << bit);
            if (a, b) == (start, end) {
                return Some(*hash);
            }
            if start <= a && b <= end {
                return None;
            }
            start = end;
        }
        if b - a <= 1 {
            return None;
        }
        let k = split(b - a);
        Some(node_hash(&self.node(a, a + k)?, &self.node(a + k, b)?))
    }
}

/// A proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("index {index} is beyond tree size {size}")]
    IndexBeyondSize {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A hash has the wrong length.
    #[error("a hash is {0} bytes long, not 32")]
    HashLength(usize),
    /// The proof has the wrong number of hashes.
    #[error("the proof has {got} hashes, {want} expected")]
    ProofLength {
        /// Hashes in the proof.
        got: usize,
        /// Hashes the sizes call for.
        want: usize,
    },
    /// The second tree is smaller than the first.
    #[error("size2 {size2} is smaller than size1 {size1}")]
    SizesReversed {
        /// The first size.
        size1: u64,
        /// The second size.
        size2: u64,
    },
    /// A consistency proof from the empty tree proves nothing and is refused.
    #[error("a consistency proof from the empty tree is meaningless")]
    EmptyTree,
    /// The hashes chain to a different root.
    #[error("the proof leads to a different root")]
    RootMismatch,
}

fn inner_proof_size(index: u64, size: u64) -> usize {
    (64 - (index ^ (size - 1)).leading_zeros()) as usize
}

fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = inner_proof_size(index, size);
    let border = (index.checked_shr(inner as u32).unwrap_or(0)).count_ones() as usize;
    (inner, border)
}

fn chain_inner<P: AsRef<[u8]>>(seed: Vec<u8>, proof: &[P], index: u64) -> Vec<u8> {
    proof.iter().enumerate().fold(seed, |seed, (i, h)| {
        if (index >> i) & 1 == 0 {
            node_hash(&seed, h.as_ref()).to_vec()
        } else {
            node_hash(h.as_ref(), &seed).to_vec()
        }
    })
}

fn chain_inner_right<P: AsRef<[u8]>>(seed: Vec<u8>, proof: &[P], index: u64) -> Vec<u8> {
    proof.iter().enumerate().fold(seed, |seed, (i, h)| {
        if (index >> i) & 1 == 1 {
            node_hash(h.as_ref(), &seed).to_vec()
        } else {
            seed
        }
    })
}

fn chain_border_right<P: AsRef<[u8]>>(seed: Vec<u8>, proof: &[P]) -> Vec<u8> {
    proof
        .iter()
        .fold(seed, |seed, h| node_hash(h.as_ref(), &seed).to_vec())
}

/// Every hash given is 32 bytes: a hash of another length would let bytes move between a root
/// and the proof hash chained to it (`node_hash` only joins its inputs).
fn all_hashes<'h>(hashes: impl IntoIterator<Item = &'h [u8]>) -> Result<(), ProofError> {
    match hashes.into_iter().find(|h| h.len() != 32) {
        Some(h) => Err(ProofError::HashLength(h.len())),
        None => Ok(()),
    }
}

fn matches(computed: &[u8], expected: &[u8]) -> Result<(), ProofError> {
    if computed == expected {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The root that an inclusion proof for `leaf` at `index` in a tree of `size` leads to.
///
/// # Errors
///
/// [`ProofError`] when the index is out of range, the leaf or a proof hash is not 32 bytes or the
/// proof has the wrong length.
pub fn root_from_inclusion_proof<P: AsRef<[u8]>>(
    index: u64,
    size: u64,
    leaf: &[u8],
    proof: &[P],
) -> Result<Vec<u8>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    all_hashes(std::iter::once(leaf).chain(proof.iter().map(AsRef::as_ref)))?;
    let (inner, border) = decompose(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::ProofLength {
            got: proof.len(),
            want: inner + border,
        });
    }
    let (inner_part, border_part) = proof.split_at(inner);
    let hash = chain_inner(leaf.to_vec(), inner_part, index);
    Ok(chain_border_right(hash, border_part))
}

/// Verifies an RFC 9162 inclusion proof (section 2.1.3.2).
///
/// # Errors
///
/// [`ProofError`] when the proof does not show `leaf` at `index` in the tree of `size` with `root`.
pub fn verify_inclusion<P: AsRef<[u8]>>(
    index: u64,
    size: u64,
    leaf: &[u8],
    proof: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    all_hashes([root])?;
    matches(&root_from_inclusion_proof(index, size, leaf, proof)?, root)
}

/// Verifies an RFC 9162 consistency proof (section 2.1.4.2) between the tree of `size1` with
/// `root1` and the tree of `size2` with `root2`.
///
/// # Errors
///
/// [`ProofError`] when the proof does not show that the first tree is a prefix of the second.
pub fn verify_consistency<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(ProofError::SizesReversed { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyTree);
    }
    if size1 == size2 {
        // The roots are compared as given, nothing chained (as transparency-dev's verifier
        // does; its vectors compare placeholder roots here).
        if !proof.is_empty() {
            return Err(ProofError::ProofLength {
                got: proof.len(),
                want: 0,
            });
        }
        return matches(root1, root2);
    }
    if proof.is_empty() {
        return Err(ProofError::ProofLength { got: 0, want: 1 });
    }
    // Now 0 < size1 < size2: the roots and hashes are chained, so each must be 32 bytes.
    all_hashes(
        [root1, root2]
            .into_iter()
            .chain(proof.iter().map(AsRef::as_ref)),
    )?;
    let (inner, border) = decompose(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    let inner = inner.saturating_sub(shift);
    let (seed, rest) = if size1 == 1u64 << shift {
        (root1.to_vec(), proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (first.as_ref().to_vec(), rest),
            None => return Err(ProofError::ProofLength { got: 0, want: 1 }),
        }
    };
    let start = proof.len() - rest.len();
    if rest.len() != inner + border {
        return Err(ProofError::ProofLength {
            got: proof.len(),
            want: start + inner + border,
        });
    }
    let (inner_part, border_part) = rest.split_at(inner);
    let mask = (size1 - 1) >> shift;
    let hash1 = chain_inner_right(seed.clone(), inner_part, mask);
    let hash1 = chain_border_right(hash1, border_part);
    matches(&hash1, root1)?;
    let hash2 = chain_inner(seed, inner_part, mask);
    let hash2 = chain_border_right(hash2, border_part);
    matches(&hash2, root2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After any number of retired leaves, the proofs of the leaves kept (and the consistency
    /// proofs from sizes not below the retired ones) are exactly those of the whole tree, and
    /// nothing retired is proved.
    #[test]
    fn proofs_after_retired_leaves_are_those_of_the_whole_tree() {
        let all = leaves(33);
        for n in 1..=all.len() {
            let whole = &all[..n];
            for cut in 0..n {
                let mut retired = MerkleTree::new();
                whole[..cut].iter().for_each(|l| retired.push(*l));
                let kept = LogLeaves::after(retired, whole[cut..].to_vec());
                assert_eq!(kept.size(), n as u64);
                for m in 0..n as u64 {
                    let proof = kept.inclusion_proof(m);
                    if m < cut as u64 {
                        assert_eq!(proof, None, "{n} {cut} {m}");
                    } else {
                        assert_eq!(proof, inclusion_proof(whole, m), "{n} {cut} {m}");
                    }
                }
                for size1 in 1..=n as u64 {
                    let proof = kept.consistency_proof(size1);
                    if size1 >= cut as u64 {
                        assert_eq!(proof, consistency_proof(whole, size1), "{n} {cut} {size1}");
                    } else if let Some(proof) = proof {
                        assert_eq!(Some(proof), consistency_proof(whole, size1));
                    }
                }
                for size in 0..=n {
                    match kept.first(size as u64) {
                        None => assert!(size < cut, "{n} {cut} {size}"),
                        Some(first) => {
                            assert_eq!(
                                (first.size(), first.kept()),
                                (size as u64, &whole[cut..size])
                            );
                        }
                    }
                }
                assert_eq!(kept.first(n as u64 + 1), None);
                assert_eq!(kept.inclusion_proof(n as u64), None);
                assert_eq!(kept.consistency_proof(0), None);
                assert_eq!(kept.consistency_proof(n as u64 + 1), None);
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let (l, r) = leaves.split_at(split(n as u64) as usize);
                node_hash(&naive_root(l), &naive_root(r))
            }
        }
    }

    #[test]
    fn a_tree_made_again_from_its_frontier_grows_as_the_original() {
        let all = leaves(70);
        for n in 0..60 {
            let mut tree = MerkleTree::new();
            all[..n].iter().for_each(|l| tree.push(*l));
            let mut again = MerkleTree::from_frontier(tree.size(), tree.frontier().to_vec())
                .expect("a frontier of the right length");
            assert_eq!(again.root(), naive_root(&all[..n]));
            all[n..].iter().for_each(|l| again.push(*l));
            assert_eq!(again.root(), naive_root(&all), "from {n} leaves");
            // One root too many or too few is refused.
            let mut longer = tree.frontier().to_vec();
            longer.push([0; 32]);
            assert!(MerkleTree::from_frontier(tree.size(), longer).is_none());
            if n > 0 {
                let shorter = tree.frontier()[1..].to_vec();
                assert!(MerkleTree::from_frontier(tree.size(), shorter).is_none());
            }
        }
    }

    #[test]
    fn incremental_root_matches_the_recursive_definition() {
        for n in 0..40 {
            let l = leaves(n);
            assert_eq!(root_of(&l), naive_root(&l), "size {n}");
        }
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    fn hex(h: &[u8]) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn generated_proofs_verify_and_tampered_ones_do_not() {
        for n in 1..34u64 {
            let l = leaves(n as usize);
            let root = root_of(&l);
            for i in 0..n {
                let proof = inclusion_proof(&l, i).unwrap();
                verify_inclusion(i, n, &l[i as usize], &proof, &root).unwrap();
                assert!(verify_inclusion(i, n, &leaf_hash(b"x"), &proof, &root).is_err());
            }
            for m in 1..=n {
                let proof = consistency_proof(&l, m).unwrap();
                let root1 = root_of(&l[..m as usize]);
                verify_consistency(m, n, &proof, &root1, &root).unwrap();
                if m < n {
                    assert!(verify_consistency(m, n, &proof, &root, &root1).is_err());
                }
            }
        }
    }
}
