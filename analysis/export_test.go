package analysis

import "gonum.org/v1/gonum/mat"

// The classical-MDS forms of ValuesSimilarityBy and MDSMapBy, the default
// method, which the tests check against their oracles; the program always
// names its method.

// ValuesSimilarity is the study's Values Similarity score: 1 minus the
// Procrustes disparity between the two-dimensional classical MDS
// configurations of the model's and the human value correlation matrices,
// the model's fitted onto the human one. 1 means the same structure up to
// rotation, reflection and scale.
func ValuesSimilarity(model, human *mat.SymDense) (float64, error) {
	return ValuesSimilarityBy(Classical, model, human)
}

// MDSMap returns what a value map plots: the human two-dimensional
// configuration and the model's configuration fitted onto it, in one frame,
// and their Values Similarity. For 10×10 value matrices the frame is turned
// (rotation or reflection only) so that the human configuration lies as
// close as it can to the idealised circle of values.Angle, and both are
// scaled so that the human points lie at root-mean-square distance 1 from
// the centre, the radius of that circle. Neither changes the similarity.
func MDSMap(model, human *mat.SymDense) (humanCfg, modelFitted *mat.Dense, sim float64, err error) {
	return MDSMapBy(Classical, model, human)
}
