// RUN: ember-opt %s -p 'assign-precision{fp16=true}' | filecheck %s

// f16 -> f32 -> f16 is exact and cancels: relu reads %x itself. f32 -> f16 -> f32 rounds and
// stays. The function keeps its declared f32 results (a cast back at the edge).
builtin.module {
  func.func @pairs(%x: tensor<4xf16>, %y: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
    %a = nn.cast %x {to = f32} : tensor<4xf16> -> tensor<4xf32>
    %b = nn.unary "relu" %a : tensor<4xf32> -> tensor<4xf32>
    %c = nn.cast %y {to = f16} : tensor<4xf32> -> tensor<4xf16>
    %d = nn.cast %c {to = f32} : tensor<4xf16> -> tensor<4xf32>
    func.return %b, %d : tensor<4xf32>, tensor<4xf32>
  }
}

// CHECK-LABEL: func.func @pairs
// CHECK-NEXT:    %[[B:.*]] = nn.unary "relu" %x : tensor<4xf16> -> tensor<4xf16>
// CHECK-NEXT:    %[[OUT:.*]] = nn.cast %[[B]] {to = f32} : tensor<4xf16> -> tensor<4xf32>
// CHECK-NEXT:    %[[C:.*]] = nn.cast %y {to = f16} : tensor<4xf32> -> tensor<4xf16>
// CHECK-NEXT:    %[[D:.*]] = nn.cast %[[C]] {to = f32} : tensor<4xf16> -> tensor<4xf32>
// CHECK-NEXT:    func.return %[[OUT]], %[[D]] : tensor<4xf32>, tensor<4xf32>
