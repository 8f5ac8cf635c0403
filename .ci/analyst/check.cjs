// Runs the README's DuckDB snippet in a results directory, then reads
// answers.parquet back with DuckDB, a Parquet reader independent of the
// writer, and checks that it holds the rows of answers.csv, no more and no
// fewer, with typed columns.
//
// usage: NODE_PATH=.../node_modules node check.cjs SNIPPET (inside the results directory)
const fs = require("fs");
const { DuckDBInstance } = require("@duckdb/node-api");

async function main() {
  const sql = fs.readFileSync(process.argv[2], "utf8");
  const db = await DuckDBInstance.create(":memory:");
  const con = await db.connect();
  const rows = async (q) => (await con.runAndReadAll(q)).getRows();
  const statements = sql.split(/;\s*\n/).map((s) => s.trim()).filter((s) => s !== "");
  for (const s of statements) {
    const got = await rows(s);
    if (got.length === 0) throw new Error(`README snippet returned no rows: ${s}`);
  }
  const csv = fs.existsSync("answers.csv") ? "answers.csv" : "answers.csv.gz";
  const types = Object.fromEntries((await rows("DESCRIBE SELECT * FROM 'answers.parquet'")).map((r) => [r[0], r[1]]));
  const want = { model: "VARCHAR", agent: "INTEGER", persona: "VARCHAR", instrument: "VARCHAR", item: "INTEGER",
    round: "INTEGER", answer: "INTEGER", valid: "BOOLEAN" };
  if ("played" in types) want.played = "BOOLEAN";
  if (JSON.stringify(types) !== JSON.stringify(want)) {
    throw new Error(`answers.parquet columns ${JSON.stringify(types)}, want ${JSON.stringify(want)}`);
  }
  const typed = `read_csv('${csv}', header = true, columns = {${Object.entries(want).map(([k, v]) => `'${k}': '${v}'`).join(", ")}})`;
  const [[nParquet]] = await rows("SELECT count(*) FROM 'answers.parquet'");
  const [[nCSV]] = await rows(`SELECT count(*) FROM ${typed}`);
  const [[onlyParquet]] = await rows(`SELECT count(*) FROM (SELECT * FROM 'answers.parquet' EXCEPT ALL SELECT * FROM ${typed})`);
  const [[onlyCSV]] = await rows(`SELECT count(*) FROM (SELECT * FROM ${typed} EXCEPT ALL SELECT * FROM 'answers.parquet')`);
  if (nParquet !== nCSV || onlyParquet !== 0n || onlyCSV !== 0n) {
    throw new Error(`answers.parquet has ${nParquet} rows, ${csv} ${nCSV}; ${onlyParquet} only in the Parquet file, ${onlyCSV} only in the CSV`);
  }
  const [[nullAnswers, invalid]] = await rows("SELECT count(*) FILTER (WHERE answer IS NULL), count(*) FILTER (WHERE NOT valid) FROM 'answers.parquet'");
  if (nullAnswers !== invalid) throw new Error(`${nullAnswers} null answers for ${invalid} invalid ones`);
  console.log(`DuckDB: ${statements.length} README statements ran; answers.parquet holds the ${nCSV} rows of ${csv}, typed`);
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
