// RUN: ember-opt %s -p fold-constants,dce | filecheck %s
// RUN: ember-opt %s --print-weights | filecheck %s --check-prefix=ROUND
// RUN: ember-opt %s | filecheck %s --check-prefix=ELIDED

// A weight's bytes travel in the resource section after the IR (MLIR's blob hex: a 4-byte
// alignment, then the little-endian bytes), keyed by its name, which may be any string.
// ember-opt reads them, so folding sees the values [1, 2]; it prints them back only when asked.
builtin.module {
  func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
    %w = nn.weight "layer/w::0" : tensor<2xf32>
    %b = nn.constant dense<1.0> : tensor<f32>
    %c = nn.binary "add" %w, %b : tensor<2xf32>, tensor<f32> -> tensor<2xf32>
    %y = nn.binary "mul" %x, %c : tensor<2xf32>, tensor<2xf32> -> tensor<2xf32>
    func.return %y : tensor<2xf32>
  }
}

{-#
  dialect_resources: {
    ember: {
      "layer/w::0": "0x040000000000803f00000040",
      "unused": "0x0400000000000000"
    }
  }
#-}

// CHECK:      %[[C:.*]] = nn.constant dense<[2.000000e+00, 3.000000e+00]> : tensor<2xf32>
// CHECK-NEXT: %[[Y:.*]] = nn.binary "mul" %{{.*}}, %[[C]]
// CHECK-NOT:  nn.weight
// CHECK-NOT:  {-#

// ROUND:      nn.weight "layer/w::0" : tensor<2xf32>
// ROUND:      {-#
// ROUND-NEXT:   dialect_resources: {
// ROUND-NEXT:     ember: {
// ROUND-NEXT:       "layer/w::0": "0x040000000000803f00000040"
// ROUND-NEXT:     }
// ROUND-NEXT:   }
// ROUND-NEXT: #-}

// ELIDED:     nn.weight "layer/w::0" : tensor<2xf32>
// ELIDED-NOT: {-#
