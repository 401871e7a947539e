package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (so that several servers, in tests, do not collide).
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec   // by endpoint and status code
	tokens       *prometheus.CounterVec   // by kind: prompt, completion
	queue        prometheus.Gauge         // requests waiting for a slot
	running      prometheus.Gauge         // requests in the running batch
	batch        prometheus.Histogram     // rows per decoding step
	adapters     prometheus.Gauge         // adapters resident
	adapterBytes prometheus.Gauge         // their weights' bytes
	ttft         *prometheus.HistogramVec // seconds to the first token, by model kind
	perToken     prometheus.Histogram     // seconds between tokens
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lorac_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lorac_tokens_total", Help: "Tokens processed, by kind (prompt or completion).",
		}, []string{"kind"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lorac_queue_depth", Help: "Requests waiting for a slot in the running batch.",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lorac_batch_running", Help: "Requests in the running batch at the last step.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lorac_batch_size", Help: "Rows of each decoding step.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		adapters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lorac_adapters_resident", Help: "Adapters whose weights are in memory.",
		}),
		adapterBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lorac_adapter_bytes", Help: "Bytes of the resident adapters' weights.",
		}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lorac_time_to_first_token_seconds", Help: "Seconds from a request's arrival to its first token, by model kind (base, adapter or mix).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"model_kind"}),
		perToken: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lorac_inter_token_seconds", Help: "Seconds between consecutive tokens of a request.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	m.reg.MustRegister(m.requests, m.tokens, m.queue, m.running, m.batch, m.adapters, m.adapterBytes, m.ttft, m.perToken,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
