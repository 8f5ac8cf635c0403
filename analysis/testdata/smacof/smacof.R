# Reference figures for analysis.MetricSMACOF and analysis.LowerTriangleCorrelation.
#
# Run from the repository root:
#   Rscript analysis/testdata/smacof/smacof.R
# It writes analysis/testdata/smacof/cases.csv, configs.csv and the made-up
# matrices random40.csv and random200.csv; the others are analysis/reference's.
#
# Metric SMACOF, written here from the published algorithm (de Leeuw & Mair
# 2009, Multidimensional scaling using majorization: SMACOF in R, J. Stat.
# Softw. 31(3), section 2, unit weights): minimise raw stress
# sum_{i<j} (delta_ij - d_ij(X))^2 by the Guttman transform
# X <- (1/n) B(X) X, starting from R's own classical scaling (stats::cmdscale),
# until an iteration lowers stress by less than 1e-12 of its value.
# Dissimilarities of a correlation matrix: sqrt(2 (1 - r)).

guttman_smacof <- function(delta, x, tol = 1e-12, itmax = 10000) {
  n <- nrow(delta)
  stress <- function(x) { d <- as.matrix(dist(x)); sum((delta - d)[lower.tri(d)]^2) }
  s <- stress(x)
  it <- 0
  repeat {
    d <- as.matrix(dist(x))
    b <- ifelse(d > 0, -delta / d, 0)
    diag(b) <- 0
    diag(b) <- -rowSums(b)
    x <- (b %*% x) / n
    it <- it + 1
    s_new <- stress(x)
    done <- (s - s_new) <= tol * s || it >= itmax
    s <- s_new
    if (done) break
  }
  list(x = x, stress = s, iterations = it)
}

read_ref <- function(name) {
  m <- as.matrix(read.csv(file.path("analysis/reference", paste0(name, ".csv")), row.names = 1, check.names = FALSE))
  m
}

cases <- list()
for (name in c("gss2012_mrat_r", "gss2012_raw_r", "ess_sweden_mrat_r", "ess_sweden_raw_r", "pvq40_smacof_mrat_r")) {
  cases[[name]] <- read_ref(name)
}
# Two made-up matrices: sample correlations of 10 variables over 40 and
# over 200 rows of a fixed random draw, some of them related.
set.seed(20091)
z <- matrix(rnorm(200 * 10), 200, 10)
z[, 2] <- z[, 2] + 0.8 * z[, 1]
z[, 5] <- z[, 5] - 0.6 * z[, 3] + 0.5 * z[, 9]
z[, 7] <- z[, 7] + 0.7 * z[, 6] - 0.4 * z[, 1]
colnames(z) <- colnames(cases[[1]])
cases[["random40"]] <- round(cor(z[1:40, ]), 6)
cases[["random200"]] <- round(cor(z), 6)

human <- cases[["gss2012_mrat_r"]]
lower <- function(m) m[lower.tri(m)]

rows <- list()
cfgs <- list()
for (name in names(cases)) {
  r <- cases[[name]]
  delta <- 2 * (1 - r)
  delta[delta < 0] <- 0
  delta <- sqrt(delta)
  diag(delta) <- 0
  start <- cmdscale(delta, k = 2)
  fit <- guttman_smacof(delta, start)
  d0 <- as.matrix(dist(start))
  rows[[name]] <- data.frame(case = name,
    classical_stress = sum((delta - d0)[lower.tri(d0)]^2),
    smacof_stress = fit$stress, iterations = fit$iterations,
    lower_r_vs_gss2012_mrat = cor(lower(r), lower(human)))
  cfgs[[name]] <- data.frame(case = name, variable = rownames(r), x = fit$x[, 1], y = fit$x[, 2])
  if (startsWith(name, "random")) write.csv(r, file.path("analysis/testdata/smacof", paste0(name, ".csv")))
}
write.csv(do.call(rbind, rows), "analysis/testdata/smacof/cases.csv", row.names = FALSE)
write.csv(do.call(rbind, cfgs), "analysis/testdata/smacof/configs.csv", row.names = FALSE)
cat(R.version.string, "\n")
