// Assignment (Hungarian) matching: the one assignment solver of the project, used to name clusters by
// classes (stage ii) and for the semantic "clustering" mIoU (eval-semseg --match hungarian).
//
// It returns exactly what SciPy's `scipy.optimize.linear_sum_assignment` returns, including which
// optimum it picks when several assignments have the same total (the reference names its clusters
// with it, so the choice among ties decides the pseudo-class names). SciPy solves the problem with
// the shortest augmenting path method of Crouse (2016, "On implementing 2D rectangular assignment
// algorithms", IEEE TAES 52(4)): rows are added one at a time; for each, a Dijkstra-like search over
// reduced costs finds the cheapest path to a free column, then the dual variables are updated and the
// path is flipped. The choice among ties follows SciPy's order of operations:
//  - a matrix with more rows than columns is transposed first, maximisation negates the costs;
//  - the unvisited columns are scanned from the highest index down; a visited column is removed by
//    moving the last entry of the scan list into its slot (so later scans run in that order);
//  - the column with the lowest path cost is taken, the first one met in the scan, except that a
//    later column with the same cost wins when it is free and the earlier one is not;
//  - the result lists the pairs in increasing row order (of the original matrix).
// Everything is computed in double precision in the same order as SciPy, so float matrices give the
// same result too.

/** Row and column indices of an optimal assignment, as SciPy's `(row_ind, col_ind)`: rows increasing. */
export interface Assignment {
  rowInd: Int32Array;
  colInd: Int32Array;
}

/**
 * `scipy.optimize.linear_sum_assignment(cost, maximize)` for an n×m cost matrix (row-major): min(n, m)
 * pairs (row, column), each row and column used at most once, with the minimum (maximum) total cost.
 * Entries may be +Infinity (forbidden pairs; maximise: −Infinity); NaN, and −Infinity when minimising,
 * are rejected, as is a matrix where no complete assignment has a finite cost.
 */
export function linearSumAssignment(cost: ArrayLike<number>, n: number, m: number, maximize = false): Assignment {
  if (!Number.isInteger(n) || !Number.isInteger(m) || n < 0 || m < 0) throw new RangeError(`bad cost matrix shape ${n}×${m}`);
  if (cost.length !== n * m) throw new RangeError(`cost has ${cost.length} entries, expected ${n}×${m}`);
  if (n === 0 || m === 0) return { rowInd: new Int32Array(0), colInd: new Int32Array(0) };

  // Work on a copy with rows ≤ columns (transposed when the input is tall), negated when maximising.
  const transpose = m < n;
  const nr = transpose ? m : n, nc = transpose ? n : m;
  const c = new Float64Array(nr * nc);
  const sign = maximize ? -1 : 1;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const x = sign * cost[i * m + j];
      c[transpose ? j * n + i : i * m + j] = x === 0 ? 0 : x; // no −0 (it compares equal anyway)
    }
  }
  for (let k = 0; k < c.length; k++) {
    if (Number.isNaN(c[k]) || c[k] === -Infinity) throw new RangeError("cost matrix contains NaN or an infinity that makes every assignment unbounded");
  }

  const u = new Float64Array(nr), v = new Float64Array(nc);
  const shortest = new Float64Array(nc);
  const path = new Int32Array(nc).fill(-1);
  const col4row = new Int32Array(nr).fill(-1), row4col = new Int32Array(nc).fill(-1);
  const inSR = new Uint8Array(nr), inSC = new Uint8Array(nc);
  const remaining = new Int32Array(nc);

  for (let curRow = 0; curRow < nr; curRow++) {
    // shortest augmenting path from curRow to a free column
    for (let k = 0; k < nc; k++) remaining[k] = nc - 1 - k;
    let left = nc;
    inSR.fill(0);
    inSC.fill(0);
    shortest.fill(Infinity);
    let minVal = 0, i = curRow, sink = -1;
    while (sink < 0) {
      inSR[i] = 1;
      let best = -1, lowest = Infinity;
      const base = i * nc, ui = u[i];
      for (let k = 0; k < left; k++) {
        const j = remaining[k];
        const r = minVal + c[base + j] - ui - v[j];
        if (r < shortest[j]) { path[j] = i; shortest[j] = r; }
        const s = shortest[j];
        if (s < lowest || (s === lowest && row4col[j] < 0)) { lowest = s; best = k; }
      }
      minVal = lowest;
      if (minVal === Infinity) throw new RangeError("cost matrix is infeasible: no assignment of finite cost");
      const j = remaining[best];
      if (row4col[j] < 0) sink = j; else i = row4col[j];
      inSC[j] = 1;
      remaining[best] = remaining[--left];
    }
    // dual update
    u[curRow] += minVal;
    for (let r = 0; r < nr; r++) if (inSR[r] && r !== curRow) u[r] += minVal - shortest[col4row[r]];
    for (let j = 0; j < nc; j++) if (inSC[j]) v[j] -= minVal - shortest[j];
    // flip the path
    let j = sink;
    for (;;) {
      const r = path[j];
      row4col[j] = r;
      const prev = col4row[r];
      col4row[r] = j;
      j = prev;
      if (r === curRow) break;
    }
  }

  const rowInd = new Int32Array(nr), colInd = new Int32Array(nr);
  if (!transpose) {
    for (let r = 0; r < nr; r++) { rowInd[r] = r; colInd[r] = col4row[r]; }
  } else {
    // pairs (original row col4row[r], original column r), sorted by original row (all distinct)
    const order = Array.from({ length: nr }, (_, r) => r).sort((a, b) => col4row[a] - col4row[b]);
    order.forEach((r, k) => { rowInd[k] = col4row[r]; colInd[k] = r; });
  }
  return { rowInd, colInd };
}

/** For each of the n rows, its column in the assignment, or −1 for a row left out (n > m). */
function rowToColumn(a: Assignment, n: number): Int32Array {
  const out = new Int32Array(n).fill(-1);
  for (let k = 0; k < a.rowInd.length; k++) out[a.rowInd[k]] = a.colInd[k];
  return out;
}

/**
 * Minimum-cost assignment of an n×m cost matrix (row-major), SciPy's choice among optima: for each row
 * its column (distinct columns), or −1 for rows left out when n > m.
 */
export function minimumCostAssignment(cost: ArrayLike<number>, n: number, m: number): Int32Array {
  return rowToColumn(linearSumAssignment(cost, n, m, false), n);
}

/**
 * Maximum-total-score assignment of rows to columns for any n×m score matrix: each row gets a
 * distinct column, or −1 when there are more rows than columns and it is left out. This is SciPy's
 * `linear_sum_assignment(score, maximize=True)`; on integer scores (counts) it is also exactly the
 * reference's `linear_sum_assignment(N - counts)`, because adding a constant to every cost leaves
 * every comparison of the algorithm unchanged when the arithmetic is exact.
 */
export function maximumAssignment(score: ArrayLike<number>, n: number, m: number): Int32Array {
  return rowToColumn(linearSumAssignment(score, n, m, true), n);
}

/** Majority vote: each row (cluster) goes to the column (class) it overlaps most (ties: lowest index). */
export function majorityAssignment(score: ArrayLike<number>, n: number, m: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < m; j++) if (score[i * m + j] > score[i * m + best]) best = j;
    out[i] = best;
  }
  return out;
}
