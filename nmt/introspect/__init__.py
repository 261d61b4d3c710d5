"""Looking inside recurrent networks: what the cells of a trained model do, and how gradients flow.

- ``decoder``: a translation traced through the decoder's gates, cell states and attention
  (nmt-inspect);
- ``plotting``: matplotlib with a font that has Japanese glyphs, the attention heatmap;
- ``activations``: a character model's cells over a text, coloured as HTML, and the cells whose
  activation follows a simple feature of the text (nmt-cells; Karpathy, Johnson & Fei-Fei 2015);
- ``gradients``: the gradient reaching each time step back from the loss, for RNN, LSTM and GRU,
  with and without clipping (recipes/bptt).
"""
