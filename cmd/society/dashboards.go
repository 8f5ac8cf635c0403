package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/society-sim/society/metrics"
)

const dashboardsSynopsis = `dashboards --out DIR [--target HOST:PORT] [--prometheus URL]

Writes what it takes to watch runs in Grafana, from the same generator as the
repository's deploy/ folder: prometheus.yml (scraping 'society run --metrics'),
the dashboard (grafana/dashboards/society.json) and Grafana's file provisioning
of the dashboard and of the Prometheus data source (grafana/provisioning/).
Existing files of those names are replaced; nothing else in DIR is touched.`

func cmdDashboards(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dashboards", dashboardsSynopsis, stderr)
	out := fs.String("out", "", "write the provisioning tree under `DIR` (required)")
	target := fs.String("target", metrics.DefaultTarget, "`HOST:PORT` Prometheus scrapes: the address given to 'society run --metrics'; several separated by commas for a distributed run's roles (run, agents, analyze)")
	promURL := fs.String("prometheus", metrics.DefaultPrometheusURL, "`URL` at which Grafana reaches Prometheus")
	scrape := fs.Duration("scrape-interval", metrics.DefaultScrapeInterval, "how often Prometheus scrapes")
	dashPath := fs.String("dashboards-path", metrics.DefaultDashboardsPath, "`DIR` in which Grafana finds the dashboard JSON (where you mount or copy grafana/dashboards)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: dashboards takes no arguments, got %q", errUsage, pos)
	}
	if *out == "" {
		return fmt.Errorf("%w: dashboards needs --out DIR", errUsage)
	}
	written, err := metrics.WriteDeploy(*out, metrics.DeployOptions{Target: *target, PrometheusURL: *promURL,
		ScrapeInterval: *scrape, DashboardsPath: *dashPath})
	for _, path := range written {
		fmt.Fprintln(stdout, path)
	}
	if errors.Is(err, metrics.ErrDeployOptions) {
		return fmt.Errorf("%w: %v", errUsage, err)
	} else if err != nil {
		return fmt.Errorf("dashboards: %w", err)
	}
	fmt.Fprintf(stdout, "\nStart Prometheus with --config.file=%s (add --enable-feature=native-histograms for finer latency percentiles)\n",
		filepath.Join(*out, metrics.PrometheusConfigFile))
	fmt.Fprintf(stdout, "and Grafana with its provisioning directory at %s; then run: society run --metrics %s\n",
		filepath.Join(*out, "grafana", "provisioning"), *target)
	return nil
}
