// The assignment solver against SciPy's linear_sum_assignment (tools/make-lsa-fixtures.py, Debian
// python3-scipy): identical (row_ind, col_ind) on matrices with many optimal assignments, so the
// choice among ties is checked, not only the optimum; the reference's call for cluster naming,
// linear_sum_assignment(N − counts), against maximumAssignment(counts); and the reference's cluster
// naming steps (utils/cluster.py) on per-mask labels against matchClusters.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { linearSumAssignment, maximumAssignment, minimumCostAssignment } from "../src/evaluation/hungarian.js";
import { matchClusters } from "../src/cluster/naming.js";
import { projectPath } from "../src/paths.js";

interface LsaCase {
  name: string;
  n: number;
  m: number;
  maximize: boolean;
  cost: (number | string)[];
  row_ind: number[];
  col_ind: number[];
  reference?: boolean;
}

const fixture = JSON.parse(fs.readFileSync(path.join(projectPath("test", "fixtures", "lsa"), "lsa_ties.json"), "utf8")) as { scipy: string; cases: LsaCase[] };
const numbers = (c: LsaCase) => Float64Array.from(c.cost, (x) => (x === "inf" ? Infinity : x === "-inf" ? -Infinity : (x as number)));

test("fixture covers hundreds of tie cases in every family", () => {
  const cases = fixture.cases;
  assert.ok(cases.length >= 600, `${cases.length} cases`);
  assert.ok(cases.some((c) => c.n > c.m) && cases.some((c) => c.n < c.m) && cases.some((c) => c.n === c.m));
  assert.ok(cases.some((c) => c.maximize) && cases.some((c) => !c.maximize && !c.reference));
  assert.ok(cases.filter((c) => c.reference).length >= 100);
  assert.ok(cases.some((c) => c.n === 25 || c.m === 25) && cases.some((c) => c.n === 1 && c.m === 1));
  assert.ok(cases.some((c) => c.cost.some((x) => typeof x === "number" && !Number.isInteger(x))), "float cases");
});

test("linearSumAssignment returns SciPy's row_ind and col_ind on every case", () => {
  const bad: string[] = [];
  for (const c of fixture.cases.filter((k) => !k.reference)) {
    const { rowInd, colInd } = linearSumAssignment(numbers(c), c.n, c.m, c.maximize);
    assert.equal(rowInd.length, Math.min(c.n, c.m), c.name);
    if (JSON.stringify([...rowInd]) !== JSON.stringify(c.row_ind) || JSON.stringify([...colInd]) !== JSON.stringify(c.col_ind)) bad.push(c.name);
  }
  assert.deepEqual(bad, [], `different assignment from SciPy ${fixture.scipy}`);
});

test("minimumCostAssignment / maximumAssignment give SciPy's row → column map", () => {
  for (const c of fixture.cases.filter((k) => !k.reference)) {
    const expected = new Int32Array(c.n).fill(-1);
    c.row_ind.forEach((r, k) => { expected[r] = c.col_ind[k]; });
    const got = c.maximize ? maximumAssignment(numbers(c), c.n, c.m) : minimumCostAssignment(numbers(c), c.n, c.m);
    assert.deepEqual([...got], [...expected], c.name);
  }
});

test("the reference's linear_sum_assignment(N − counts) is maximumAssignment(counts)", () => {
  const ref = fixture.cases.filter((k) => k.reference);
  assert.ok(ref.length >= 100);
  for (const c of ref) {
    const expected = new Int32Array(c.n).fill(-1);
    c.row_ind.forEach((r, k) => { expected[r] = c.col_ind[k]; });
    assert.deepEqual([...maximumAssignment(numbers(c), c.n, c.m)], [...expected], c.name);
  }
});

interface NamingCase {
  name: string;
  clusters: number[];
  targets: number[];
  n_clusters: number;
  n_classes: number;
  names: (number | null)[];
  fails: boolean;
  plain_differs: boolean;
}
const naming = JSON.parse(fs.readFileSync(path.join(projectPath("test", "fixtures", "lsa"), "cluster_naming.json"), "utf8")) as { cases: NamingCase[] };

test("cluster naming names every cluster as the reference's utils/cluster.py (renumbered classes, SciPy ties, Counter ties)", () => {
  let hungarian = 0, majority = 0, differs = 0;
  for (const c of naming.cases) {
    const m = matchClusters(c.clusters, c.targets, c.n_clusters, c.n_classes);
    assert.equal(m.method, c.n_clusters <= c.n_classes ? "hungarian" : "majority");
    c.names.forEach((want, k) => {
      if (want !== null) assert.equal(m.clusterToClass[k], want, `${c.name}: cluster ${k}`);
    });
    if (m.method === "hungarian") {
      hungarian++;
      // one-to-one over all classes, also where the reference has no name for a cluster
      assert.deepEqual([...m.clusterToClass].sort((a, b) => a - b), Array.from({ length: c.n_classes }, (_, k) => k), c.name);
    } else {
      majority++;
      c.names.forEach((want, k) => { if (want === null) assert.equal(m.clusterToClass[k], -1, `${c.name}: empty cluster ${k}`); });
    }
    if (c.plain_differs && !c.fails) differs++;
  }
  assert.ok(hungarian >= 90 && majority >= 40, `${hungarian} Hungarian, ${majority} majority cases`);
  assert.ok(differs >= 30, `only ${differs} cases where the tie-breaking matters`);
});

test("hand cases: SciPy's documented example, constant matrix → identity, errors", () => {
  // scipy docs example: cost [[4, 1, 3], [2, 0, 5], [3, 2, 2]] → cols [1, 0, 2], total 5
  const a = linearSumAssignment([4, 1, 3, 2, 0, 5, 3, 2, 2], 3, 3);
  assert.deepEqual([...a.rowInd], [0, 1, 2]);
  assert.deepEqual([...a.colInd], [1, 0, 2]);
  // a constant matrix gives the identity (scipy #11602), also when tall
  assert.deepEqual([...linearSumAssignment(new Float64Array(16).fill(7), 4, 4).colInd], [0, 1, 2, 3]);
  const tall = linearSumAssignment(new Float64Array(12), 4, 3);
  assert.deepEqual([...tall.rowInd], [0, 1, 2]);
  assert.deepEqual([...tall.colInd], [0, 1, 2]);
  assert.deepEqual([...maximumAssignment(new Float64Array(12), 4, 3)], [0, 1, 2, -1]);
  assert.equal(linearSumAssignment([], 0, 5).rowInd.length, 0);
  assert.throws(() => linearSumAssignment([1, NaN], 1, 2), /NaN/);
  assert.throws(() => linearSumAssignment([1, -Infinity], 1, 2), /infinity/);
  assert.throws(() => linearSumAssignment([Infinity, Infinity, 1, 1], 2, 2), /infeasible/);
  assert.throws(() => linearSumAssignment([1, 2, 3], 2, 2), /entries/);
});
