// RUN: ember-opt %s -p cancel-transposes,dce | filecheck %s

builtin.module {
  // A transpose and its inverse vanish; two others compose into one.
  // CHECK-LABEL: func.func @pairs
  // CHECK-NEXT:    %[[T:.*]] = nn.transpose %x {perm = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> -> tensor<4x2x3xf32>
  // CHECK-NEXT:    func.return %x, %[[T]]
  func.func @pairs(%x: tensor<2x3x4xf32>) -> (tensor<2x3x4xf32>, tensor<4x2x3xf32>) {
    %a = nn.transpose %x {perm = array<i64: 1, 2, 0>} : tensor<2x3x4xf32> -> tensor<3x4x2xf32>
    %b = nn.transpose %a {perm = array<i64: 2, 0, 1>} : tensor<3x4x2xf32> -> tensor<2x3x4xf32>
    %c = nn.transpose %x {perm = array<i64: 0, 2, 1>} : tensor<2x3x4xf32> -> tensor<2x4x3xf32>
    %d = nn.transpose %c {perm = array<i64: 1, 0, 2>} : tensor<2x4x3xf32> -> tensor<4x2x3xf32>
    func.return %b, %d : tensor<2x3x4xf32>, tensor<4x2x3xf32>
  }

  // An identity transpose of a symbolic tensor vanishes; symbols survive composition.
  // CHECK-LABEL: func.func @symbolic
  // CHECK-NEXT:    %[[T:.*]] = nn.transpose %x {perm = array<i64: 1, 0, 2>} : tensor<?x3x?xf32, #nn.layout<["N", "S"]>> -> tensor<3x?x?xf32, #nn.layout<["N", "S"]>>
  // CHECK-NEXT:    func.return %x, %[[T]]
  func.func @symbolic(%x: tensor<?x3x?xf32, #nn.layout<["N", "S"]>>) -> (tensor<?x3x?xf32, #nn.layout<["N", "S"]>>, tensor<3x?x?xf32, #nn.layout<["N", "S"]>>) {
    %a = nn.transpose %x {perm = array<i64: 0, 1, 2>} : tensor<?x3x?xf32, #nn.layout<["N", "S"]>> -> tensor<?x3x?xf32, #nn.layout<["N", "S"]>>
    %b = nn.transpose %x {perm = array<i64: 2, 0, 1>} : tensor<?x3x?xf32, #nn.layout<["N", "S"]>> -> tensor<?x?x3xf32, #nn.layout<["S", "N"]>>
    %c = nn.transpose %b {perm = array<i64: 2, 1, 0>} : tensor<?x?x3xf32, #nn.layout<["S", "N"]>> -> tensor<3x?x?xf32, #nn.layout<["N", "S"]>>
    func.return %a, %c : tensor<?x3x?xf32, #nn.layout<["N", "S"]>>, tensor<3x?x?xf32, #nn.layout<["N", "S"]>>
  }

  // A transpose of the last two dims into a matmul operand becomes its flag (a flag already set
  // flips back); a transpose of other dims stays.
  // CHECK-LABEL: func.func @matmul
  // CHECK-NEXT:    %[[A:.*]] = nn.matmul %x, %y {transpose_a = true} : (tensor<2x5x4xf32>, tensor<2x5x3xf32>) -> tensor<2x4x3xf32>
  // CHECK-NEXT:    %[[B:.*]] = nn.matmul %x, %z {transpose_b = true} : (tensor<2x5x4xf32>, tensor<3x4xf32>) -> tensor<2x5x3xf32>
  // CHECK-NEXT:    %[[C:.*]] = nn.matmul %x, %w : (tensor<2x5x4xf32>, tensor<4x3xf32>) -> tensor<2x5x3xf32>
  // CHECK-NEXT:    %[[P:.*]] = nn.transpose %x {perm = array<i64: 1, 0, 2>}
  // CHECK-NEXT:    %[[D:.*]] = nn.matmul %[[P]], %w
  // CHECK-NEXT:    func.return %[[A]], %[[B]], %[[C]], %[[D]]
  func.func @matmul(%x: tensor<2x5x4xf32>, %y: tensor<2x5x3xf32>, %z: tensor<3x4xf32>, %w: tensor<4x3xf32>) -> (tensor<2x4x3xf32>, tensor<2x5x3xf32>, tensor<2x5x3xf32>, tensor<5x2x3xf32>) {
    %xt = nn.transpose %x {perm = array<i64: 0, 2, 1>} : tensor<2x5x4xf32> -> tensor<2x4x5xf32>
    %a = nn.matmul %xt, %y : (tensor<2x4x5xf32>, tensor<2x5x3xf32>) -> tensor<2x4x3xf32>
    %zt = nn.transpose %z {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
    %b = nn.matmul %x, %zt : (tensor<2x5x4xf32>, tensor<4x3xf32>) -> tensor<2x5x3xf32>
    %wt = nn.transpose %w {perm = array<i64: 1, 0>} : tensor<4x3xf32> -> tensor<3x4xf32>
    %c = nn.matmul %x, %wt {transpose_b = true} : (tensor<2x5x4xf32>, tensor<3x4xf32>) -> tensor<2x5x3xf32>
    %p = nn.transpose %x {perm = array<i64: 1, 0, 2>} : tensor<2x5x4xf32> -> tensor<5x2x4xf32>
    %d = nn.matmul %p, %w : (tensor<5x2x4xf32>, tensor<4x3xf32>) -> tensor<5x2x3xf32>
    func.return %a, %b, %c, %d : tensor<2x4x3xf32>, tensor<2x5x3xf32>, tensor<2x5x3xf32>, tensor<5x2x3xf32>
  }
}
