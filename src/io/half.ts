/** The half/bfloat16 conversions live in util (the quantized kernels use them too). */
export { f32ToF16, f32ToBf16 } from '../util/half.js';
