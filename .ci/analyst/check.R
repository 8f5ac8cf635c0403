# Runs the README's R snippet in a results directory and checks what it
# loaded: the answers of results.json, and the mean MRAT score by persona and
# scale against the one check.py computed with pandas.
#
# usage: Rscript check.R SNIPPET EXPECTED_MRAT_CSV (inside the results directory)
args <- commandArgs(trailingOnly = TRUE)
source(args[1], local = TRUE)
expected <- as.numeric(sub('.*"expected": *([0-9]+).*', "\\1",
  grep('"expected":', readLines("results.json"), value = TRUE)[1]))
stopifnot(nrow(answers) == expected)
stopifnot(is.logical(answers$valid), all(is.na(answers$answer[!answers$valid])))
want <- read.csv(args[2])
got <- mapply(function(p, s) mrat[p, s], want$persona, want$scale)
stopifnot(isTRUE(all.equal(unname(got), want$mrat, tolerance = 1e-9)))
cat(sprintf("R: %d answers, %d scores, mean MRAT of %d persona and scale cells as pandas has them\n",
  nrow(answers), nrow(scores), nrow(want)))
