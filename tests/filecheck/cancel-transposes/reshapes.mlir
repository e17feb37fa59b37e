// RUN: ember-opt %s -p cancel-transposes,dce | filecheck %s

builtin.module {
  // A reshape chain is one reshape to the last target; a reshape back to the input vanishes.
  // CHECK-LABEL: func.func @chain
  // CHECK-NEXT:    %[[R:.*]] = nn.reshape %x : (tensor<2x3x4xf32>) -> tensor<4x6xf32>
  // CHECK-NEXT:    func.return %[[R]], %x
  func.func @chain(%x: tensor<2x3x4xf32>) -> (tensor<4x6xf32>, tensor<2x3x4xf32>) {
    %a = nn.reshape %x : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
    %b = nn.reshape %a : (tensor<6x4xf32>) -> tensor<24xf32>
    %c = nn.reshape %b : (tensor<24xf32>) -> tensor<4x6xf32>
    %d = nn.reshape %c : (tensor<4x6xf32>) -> tensor<2x3x4xf32>
    func.return %c, %d : tensor<4x6xf32>, tensor<2x3x4xf32>
  }

  // Symbolic dims: a flatten and unflatten by a named batch is the identity.
  // CHECK-LABEL: func.func @symbolic
  // CHECK-NEXT:    func.return %x
  func.func @symbolic(%x: tensor<?x4xf32, #nn.layout<["N"]>>) -> tensor<?x4xf32, #nn.layout<["N"]>> {
    %a = nn.reshape %x : (tensor<?x4xf32, #nn.layout<["N"]>>) -> tensor<?xf32, #nn.layout<["4*N"]>>
    %b = nn.reshape %a : (tensor<?xf32, #nn.layout<["4*N"]>>) -> tensor<?x4xf32, #nn.layout<["N"]>>
    func.return %b : tensor<?x4xf32, #nn.layout<["N"]>>
  }

  // Left alone: two anonymous dims are not known to be the same two dims ([2, 6] -> [3, 4]
  // has this type); an outer target with two unknown dims cannot stand alone; a run-time target.
  // CHECK-LABEL: func.func @unknown
  // CHECK-NEXT:    %[[A:.*]] = nn.reshape %x : (tensor<?x?xf32>) -> tensor<?x?xf32>
  // CHECK-NEXT:    %[[B:.*]] = nn.reshape %y : (tensor<12xf32>) -> tensor<?xf32>
  // CHECK-NEXT:    %[[C:.*]] = nn.reshape %[[B]] : (tensor<?xf32>) -> tensor<?x?xf32>
  // CHECK-NEXT:    %[[D:.*]] = nn.reshape %[[C]], %s
  // CHECK-NEXT:    func.return %[[A]], %[[C]], %[[D]]
  func.func @unknown(%x: tensor<?x?xf32>, %y: tensor<12xf32>, %s: tensor<2xi64>) -> (tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>) {
    %a = nn.reshape %x : (tensor<?x?xf32>) -> tensor<?x?xf32>
    %b = nn.reshape %y : (tensor<12xf32>) -> tensor<?xf32>
    %c = nn.reshape %b : (tensor<?xf32>) -> tensor<?x?xf32>
    %d = nn.reshape %c, %s : (tensor<?x?xf32>, tensor<2xi64>) -> tensor<?x?xf32>
    func.return %a, %c, %d : tensor<?x?xf32>, tensor<?x?xf32>, tensor<?x?xf32>
  }
}
