package main

import "fmt"

// The data set's models, each sized to a byte budget by its number of
// layers, with the layer widths of real models of that size class.

// decoderLLM is a Llama-style decoder: embedding, per layer attention
// projections, gated MLP and RMS norms, and an untied output head.
func decoderLLM(budget int64) []tensorSpec {
	type dims struct{ d, ffn, vocab int }
	pick := dims{128, 352, 4000}
	for _, c := range []dims{{1024, 2816, 32000}, {512, 1408, 16000}, {256, 704, 8000}} {
		if layerCount(budget, llmFixed(c.d, c.vocab), llmLayer(c.d, c.ffn)) >= 2 {
			pick = c
			break
		}
	}
	layers := max(1, layerCount(budget, llmFixed(pick.d, pick.vocab), llmLayer(pick.d, pick.ffn)))
	d, ffn := pick.d, pick.ffn
	ts := []tensorSpec{{"model.embed_tokens.weight", []int{pick.vocab, d}}}
	for i := range layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		ts = append(ts,
			tensorSpec{p + "input_layernorm.weight", []int{d}},
			tensorSpec{p + "self_attn.q_proj.weight", []int{d, d}},
			tensorSpec{p + "self_attn.k_proj.weight", []int{d, d}},
			tensorSpec{p + "self_attn.v_proj.weight", []int{d, d}},
			tensorSpec{p + "self_attn.o_proj.weight", []int{d, d}},
			tensorSpec{p + "post_attention_layernorm.weight", []int{d}},
			tensorSpec{p + "mlp.gate_proj.weight", []int{ffn, d}},
			tensorSpec{p + "mlp.up_proj.weight", []int{ffn, d}},
			tensorSpec{p + "mlp.down_proj.weight", []int{d, ffn}},
		)
	}
	return append(ts, tensorSpec{"model.norm.weight", []int{d}}, tensorSpec{"lm_head.weight", []int{pick.vocab, d}})
}

func llmFixed(d, vocab int) int64 { return 4 * int64(2*vocab*d+d) }
func llmLayer(d, ffn int) int64   { return 4 * int64(4*d*d+3*d*ffn+2*d) }

// encoderBERT is a BERT-style encoder with biases and layer norms: many
// small tensors between the matrices, as real checkpoints have.
func encoderBERT(budget int64) []tensorSpec {
	type dims struct{ d, ffn, vocab int }
	pick := dims{128, 512, 4000}
	for _, c := range []dims{{768, 3072, 30522}, {384, 1536, 30522}, {256, 1024, 8000}} {
		if layerCount(budget, bertFixed(c.d, c.vocab), bertLayer(c.d, c.ffn)) >= 2 {
			pick = c
			break
		}
	}
	layers := max(1, layerCount(budget, bertFixed(pick.d, pick.vocab), bertLayer(pick.d, pick.ffn)))
	d, ffn := pick.d, pick.ffn
	ts := []tensorSpec{
		{"embeddings.word_embeddings.weight", []int{pick.vocab, d}},
		{"embeddings.position_embeddings.weight", []int{512, d}},
		{"embeddings.token_type_embeddings.weight", []int{2, d}},
		{"embeddings.LayerNorm.weight", []int{d}},
		{"embeddings.LayerNorm.bias", []int{d}},
	}
	dense := func(name string, out, in int) []tensorSpec {
		return []tensorSpec{{name + ".weight", []int{out, in}}, {name + ".bias", []int{out}}}
	}
	norm := func(name string) []tensorSpec {
		return []tensorSpec{{name + ".weight", []int{d}}, {name + ".bias", []int{d}}}
	}
	for i := range layers {
		p := fmt.Sprintf("encoder.layer.%d.", i)
		ts = append(ts, dense(p+"attention.self.query", d, d)...)
		ts = append(ts, dense(p+"attention.self.key", d, d)...)
		ts = append(ts, dense(p+"attention.self.value", d, d)...)
		ts = append(ts, dense(p+"attention.output.dense", d, d)...)
		ts = append(ts, norm(p+"attention.output.LayerNorm")...)
		ts = append(ts, dense(p+"intermediate.dense", ffn, d)...)
		ts = append(ts, dense(p+"output.dense", d, ffn)...)
		ts = append(ts, norm(p+"output.LayerNorm")...)
	}
	return append(ts, dense("pooler.dense", d, d)...)
}

func bertFixed(d, vocab int) int64 { return 4 * int64(vocab*d+514*d+2*d+d*d+d) }
func bertLayer(d, ffn int) int64   { return 4 * int64(4*d*d+2*d*ffn+9*d+ffn) }

// mlpClassifier is a stack of Gemm+Relu layers ending in 1000 classes, in
// the layout ONNX Gemm with transB=1 wants (weight [out, in]).
func mlpClassifier(budget int64) (tensors []tensorSpec, width, classes int) {
	width, classes = 2048, 1000
	for _, w := range []int{2048, 1024, 512, 256} {
		width = w
		if layerCount(budget, 4*int64(classes*w+classes), 4*int64(w*w+w)) >= 2 {
			break
		}
	}
	layers := max(1, layerCount(budget, 4*int64(classes*width+classes), 4*int64(width*width+width)))
	for i := range layers {
		tensors = append(tensors,
			tensorSpec{fmt.Sprintf("fc%d.weight", i), []int{width, width}},
			tensorSpec{fmt.Sprintf("fc%d.bias", i), []int{width}})
	}
	tensors = append(tensors,
		tensorSpec{"head.weight", []int{classes, width}},
		tensorSpec{"head.bias", []int{classes}})
	return tensors, width, classes
}

func layerCount(budget, fixed, perLayer int64) int {
	if budget <= fixed {
		return 0
	}
	return int((budget - fixed) / perLayer)
}

// shard splits tensors in order into groups of at most maxBytes each (a
// tensor larger than that gets a shard of its own), as sharded checkpoints
// are written.
func shard(ts []tensorSpec, maxBytes int64) [][]tensorSpec {
	var shards [][]tensorSpec
	var cur []tensorSpec
	var size int64
	for _, t := range ts {
		if len(cur) > 0 && size+t.bytes() > maxBytes {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
		cur = append(cur, t)
		size += t.bytes()
	}
	if len(cur) > 0 {
		shards = append(shards, cur)
	}
	return shards
}
