// RUN: ember-opt %s -p convert-nn-to-kernel,plan-memory | filecheck %s
// RUN: ember-opt %s -p convert-nn-to-kernel,plan-memory,plan-memory | filecheck %s

// Each kernel result gets its arena offset (`arena`, one per result), the function the arena's
// size and its activations' unshared size. Every activation here is 4096 bytes: %a lives from
// step 0 to step 2, where %s reads it through the view %v; %b from 1 to 2; %s from 2 to 3
// (where %d reads it through %c); %d, the function's result, to the end. So %s cannot take
// %a's bytes (live together at step 2) and %d can (after %a's last read): the arena is
// 3 x 4096 bytes for 4 x 4096 of activations. Planning again gives the same plan.
builtin.module {
  func.func @main(%x: tensor<1x1024xf32>) -> tensor<1x1024xf32> {
    %a = nn.unary "relu" %x : tensor<1x1024xf32> -> tensor<1x1024xf32>
    %v = nn.reshape %a : (tensor<1x1024xf32>) -> tensor<4x256xf32>
    %b = nn.unary "exp" %x : tensor<1x1024xf32> -> tensor<1x1024xf32>
    %w = nn.reshape %b : (tensor<1x1024xf32>) -> tensor<4x256xf32>
    %s = nn.binary "add" %v, %w : tensor<4x256xf32>, tensor<4x256xf32> -> tensor<4x256xf32>
    %c = nn.reshape %s : (tensor<4x256xf32>) -> tensor<1x1024xf32>
    %d = nn.unary "neg" %c : tensor<1x1024xf32> -> tensor<1x1024xf32>
    func.return %d : tensor<1x1024xf32>
  }
}

// CHECK:      func.func @main(%x: tensor<1x1024xf32>) -> tensor<1x1024xf32> attributes {ember.arena_bytes = 12288 : i64, ember.activation_bytes = 16384 : i64} {
// CHECK-NEXT:   %a = kernel.elementwise(%x) attributes {arena = array<i64: 0>}
// CHECK:        %v = kernel.view %a
// CHECK-NEXT:   %b = kernel.elementwise(%x) attributes {arena = array<i64: 4096>}
// CHECK:        %w = kernel.view %b
// CHECK-NEXT:   %s = kernel.elementwise(%v, %w) attributes {arena = array<i64: 8192>}
// CHECK:        %c = kernel.view %s
// CHECK-NEXT:   %d = kernel.elementwise(%c) attributes {arena = array<i64: 0>}
// CHECK:        func.return %d
